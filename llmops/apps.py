from django.apps import AppConfig


class LlmopsConfig(AppConfig):
    name = "llmops"
    verbose_name = "Gateway: teams and API keys"

    def ready(self) -> None:
        from llmops.api import schema  # noqa: F401  (registers OpenAPI extensions)
