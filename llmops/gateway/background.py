"""The gateway's background work runs in the process's default group of llmops.background."""

from llmops.background import spawn

__all__ = ["spawn"]
