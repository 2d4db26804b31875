"""Observability: /metrics exposition, the built-in dashboard, quality signals and request logs."""
