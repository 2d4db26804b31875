"""POST /v1/embeddings — OpenAI's Embeddings API: validate, run the embeddings pipeline, render
the vectors as floats or base64 (little-endian float32, as OpenAI sends them)."""

import base64

import numpy as np
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
)
from rest_framework import serializers
from rest_framework.response import Response

from llmops.api.answering import server_timing
from llmops.api.base import AsyncAPIView
from llmops.api.context import principal_from_key, request_cache_control
from llmops.api.schema import OPENAI_ERRORS
from llmops.api.serializers import FieldsBuiltOnceMixin
from llmops.gateway.context import RequestContext
from llmops.gateway.embeddings import embeddings_create
from routing.tokens import token_vocabulary_size

# OpenAI's limits: at most 2048 inputs a request.
MAX_INPUTS = 2048


@extend_schema_field({
    "oneOf": [
        {"type": "string", "minLength": 1},
        {"type": "array", "items": {"type": "string", "minLength": 1}, "minItems": 1,
         "maxItems": MAX_INPUTS},
        {"type": "array", "items": {"type": "integer", "minimum": 0}, "minItems": 1},
        {"type": "array", "items": {"type": "array", "items": {"type": "integer", "minimum": 0},
                                    "minItems": 1}, "minItems": 1, "maxItems": MAX_INPUTS},
    ],
})
class EmbeddingInputField(serializers.Field):
    """`input`: a string, a list of strings, a list of token ids, or a list of token-id lists;
    returned as a list of inputs (each a string or a token-id list)."""

    default_error_messages = {
        "invalid": "input must be a non-empty string, a list of strings, a list of token ids, "
                   "or a list of token-id lists.",
    }

    def to_internal_value(self, data):
        if isinstance(data, str):
            return [self._text(data, None)]
        if not isinstance(data, list) or not data:
            self.fail("invalid")
        if all(_is_token(t) for t in data):
            return [self._tokens(data, None)]
        if len(data) > MAX_INPUTS:
            raise serializers.ValidationError(
                f"input may hold at most {MAX_INPUTS} items; it holds {len(data)}.")
        if all(isinstance(item, str) for item in data):
            return [self._text(item, i) for i, item in enumerate(data)]
        if all(isinstance(item, list) for item in data):
            return [self._tokens(item, i) for i, item in enumerate(data)]
        self.fail("invalid")

    @staticmethod
    def _text(text: str, index: int | None) -> str:
        if not text:
            where = "input" if index is None else f"input[{index}]"
            raise serializers.ValidationError(f"{where} must not be an empty string.")
        return text

    @staticmethod
    def _tokens(ids: list, index: int | None) -> list[int]:
        where = "input" if index is None else f"input[{index}]"
        if not ids or not all(_is_token(t) for t in ids):
            raise serializers.ValidationError(f"{where} must be a non-empty list of token ids.")
        vocabulary = token_vocabulary_size()
        bad = next((t for t in ids if not 0 <= t < vocabulary), None)
        if bad is not None:
            raise serializers.ValidationError(
                f"{where} holds token id {bad}, outside the tokenizer's range 0-{vocabulary - 1}.")
        return ids

    def to_representation(self, value):
        return value


def _is_token(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class EmbeddingInputSerializer(FieldsBuiltOnceMixin, serializers.Serializer):
    """The OpenAI Embeddings request."""

    model = serializers.CharField(max_length=200, help_text="An embedding model profile name.")
    input = EmbeddingInputField(help_text="A string, a list of strings, a list of token ids or "
                                          f"a list of token-id lists (at most {MAX_INPUTS}).")
    dimensions = serializers.IntegerField(required=False, allow_null=True, min_value=1,
                                          max_value=65536)
    encoding_format = serializers.ChoiceField(choices=("float", "base64"), default="float",
                                              required=False)
    user = serializers.CharField(required=False, max_length=256, allow_blank=True)


def embedding_data(vectors: list, *, encoding_format: str) -> list[dict]:
    """Return OpenAI's `data` list: each vector as floats, or its little-endian float32 bytes
    base64-encoded."""
    data = []
    for index, vector in enumerate(vectors):
        array = np.asarray(vector, dtype="<f4")
        embedding = (base64.b64encode(array.tobytes()).decode("ascii")
                     if encoding_format == "base64" else array.tolist())
        data.append({"object": "embedding", "index": index, "embedding": embedding})
    return data


class EmbeddingCreateApi(AsyncAPIView):
    """POST /v1/embeddings — OpenAI's Embeddings API."""

    InputSerializer = EmbeddingInputSerializer

    @extend_schema(
        operation_id="embedding_create",
        request=EmbeddingInputSerializer,
        examples=[OpenApiExample("The gateway's own model", request_only=True,
                                 value={"model": "llmops-minilm",
                                        "input": ["What is a semantic cache?", "Hello"]})],
        responses={200: OpenApiResponse(description="A list of embedding objects with usage "
                                                    "(prompt_tokens, total_tokens) and cost."),
                   **OPENAI_ERRORS},
    )
    async def post(self, request):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        ctx = RequestContext(
            request_id=getattr(request._request, "request_id", "")
            or request.META.get("HTTP_X_REQUEST_ID", ""),
            principal=principal_from_key(request.auth), body={}, messages=[],
            requested_model=data["model"], params={"user": data.get("user") or None},
            endpoint="embeddings", cache_control=request_cache_control(request))
        if hasattr(request, "auth_seconds"):
            ctx.timings["auth"] = request.auth_seconds
        result = await embeddings_create(ctx, inputs=data["input"],
                                         dimensions=data.get("dimensions"))
        body = {
            "object": "list",
            "data": embedding_data(result.vectors, encoding_format=data["encoding_format"]),
            "model": result.model,
            "usage": {"prompt_tokens": result.prompt_tokens,
                      "total_tokens": result.prompt_tokens,
                      "cost": float(result.cost),
                      "llmops": {"request_id": ctx.request_id, "cache": ctx.cache_status}},
        }
        timing = server_timing(ctx.timings)
        if timing:
            result.headers["Server-Timing"] = timing
        return Response(body, headers=result.headers)
