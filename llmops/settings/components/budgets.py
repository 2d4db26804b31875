"""Settings for the budgets integration."""

from llmops.settings.env import env  # noqa: F401
