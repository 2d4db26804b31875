"""The OpenAI-compatible endpoints: chat completions and the model list."""

import time

from drf_spectacular.utils import (
    OpenApiResponse,
    extend_schema,
    inline_serializer,
)
from rest_framework import serializers
from rest_framework.response import Response

from llmops.api.answering import answer, event_stream_response
from llmops.api.base import AsyncAPIView
from llmops.api.context import context_from_request
from llmops.api.schema import OPENAI_ERROR, OPENAI_ERRORS
from llmops.api.serializers import ChatCompletionInputSerializer
from llmops.api.sse import chat_completion_sse
from llmops.gateway.pipeline import StreamResult
from routing.router import models_offered


class ChatCompletionCreateApi(AsyncAPIView):
    """POST /v1/chat/completions — OpenAI's Chat Completions, streamed or not."""

    InputSerializer = ChatCompletionInputSerializer

    @extend_schema(
        operation_id="chat_completion_create",
        request=ChatCompletionInputSerializer,
        responses={200: OpenApiResponse(description="A chat.completion object, or an SSE stream "
                                        "of chat.completion.chunk objects when stream=true."),
                   **OPENAI_ERRORS},
    )
    async def post(self, request):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        ctx = context_from_request(request, serializer.validated_data)
        result = await answer(ctx)
        if isinstance(result, StreamResult):
            return event_stream_response(chat_completion_sse(result.events), result.headers)
        return Response(result.body, headers=result.headers)


class ModelListApi(AsyncAPIView):
    """GET /v1/models — the models this gateway can call now (`auto` and the enabled profiles
    whose provider is configured); `?all=true` lists every enabled one, each saying whether it
    is usable and, when not, why (the `llmops` object: an extension OpenAI's SDKs ignore)."""

    class InputSerializer(serializers.Serializer):
        all = serializers.BooleanField(
            default=False, help_text="Also list the enabled models that cannot be called now "
                                     "(e.g. their provider's API key is not set).")

    @extend_schema(
        operation_id="model_list",
        parameters=[InputSerializer],
        responses={200: inline_serializer("ModelList", {
            "object": serializers.CharField(),
            "data": inline_serializer("Model", {
                "id": serializers.CharField(), "object": serializers.CharField(),
                "created": serializers.IntegerField(), "owned_by": serializers.CharField(),
                "llmops": inline_serializer("ModelUsability", {
                    "usable": serializers.BooleanField(),
                    "reason": serializers.CharField(allow_null=True),
                }, required=False, help_text="With ?all=true: whether the gateway can call "
                                             "the model now, and why not."),
            }, many=True)}), 400: OpenApiResponse(OPENAI_ERROR),
            401: OpenApiResponse(OPENAI_ERROR)},
    )
    async def get(self, request):
        params = self.InputSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        everything = params.validated_data["all"]
        now = int(time.time())
        data = []
        for model in await models_offered():
            if model.unavailable and not everything:
                continue
            entry = {"id": model.name, "object": "model",
                     "created": int(model.created.timestamp()) if model.created else now,
                     "owned_by": model.owned_by}
            if everything:
                entry["llmops"] = {"usable": not model.unavailable,
                                   "reason": model.unavailable or None}
            data.append(entry)
        return Response({"object": "list", "data": data})
