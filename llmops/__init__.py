"""llmops: an OpenAI-compatible LLM gateway with semantic caching, routing and budgets."""

from llmops.celery import app as celery_app

__all__ = ["celery_app"]
