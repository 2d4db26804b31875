"""OpenAPI descriptions for llmops' own DRF classes (loaded by LlmopsConfig.ready)."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import OpenApiResponse, inline_serializer
from rest_framework import serializers


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "llmops.authentication.ApiKeyAuthentication"
    name = "ApiKeyAuth"

    def get_security_definition(self, auto_schema) -> dict:
        return {"type": "http", "scheme": "bearer", "bearerFormat": "llmops-<prefix>.<secret>"}


# The OpenAI error object, for the OpenAI-shaped endpoints' schemas (chat completions, responses,
# embeddings, models).
OPENAI_ERROR = inline_serializer(
    "Error",
    {"error": inline_serializer("ErrorBody", {
        "message": serializers.CharField(), "type": serializers.CharField(),
        "code": serializers.CharField(allow_null=True),
        "param": serializers.CharField(allow_null=True)})},
)
OPENAI_ERRORS = {status: OpenApiResponse(OPENAI_ERROR)
                 for status in (400, 401, 402, 404, 413, 415, 429, 502, 503, 504)}
