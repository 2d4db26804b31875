"""Settings for the observability integration."""

from llmops.settings.env import env  # noqa: F401
