"""The app that keeps stored responses (POST /v1/responses with store=true)."""

from django.apps import AppConfig


class ResponsesConfig(AppConfig):
    name = "llmops.responses"
    label = "responses"
    verbose_name = "Responses API"
    default_auto_field = "django.db.models.BigAutoField"
