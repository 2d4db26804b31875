"""Settings for the routing integration."""

from llmops.settings.env import env  # noqa: F401
