"""The gateway pipeline: one request, end to end (see DESIGN.md)."""
