"""The gateway pipeline: one request, end to end (docs/architecture.md)."""
