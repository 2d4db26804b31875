"""POST /v1/messages and /v1/messages/count_tokens — Anthropic's Messages API on the pipeline."""

from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response

from budgets.models import Endpoint
from llmops.api.answering import answer, event_stream_response
from llmops.api.base import AsyncAPIView
from llmops.api.context import context_from_request
from llmops.api.messages.errors import messages_exception_handler
from llmops.api.messages.serializers import (
    AnthropicCountTokensInputSerializer,
    AnthropicMessageCreateInputSerializer,
)
from llmops.api.messages.stream import messages_sse
from llmops.api.messages.translate import chat_messages, chat_params, message_body
from llmops.gateway.context import RequestContext
from llmops.gateway.pipeline import StreamResult
from routing.router import route

_ERROR = inline_serializer("AnthropicError", {
    "type": serializers.CharField(),
    "error": inline_serializer("AnthropicErrorBody", {
        "type": serializers.CharField(), "message": serializers.CharField()}),
    "request_id": serializers.CharField(required=False),
})
_ERRORS = {status: OpenApiResponse(_ERROR) for status in (400, 401, 402, 404, 413, 415, 429,
                                                          502, 503, 504)}
_MESSAGE = inline_serializer("AnthropicMessage", {
    "id": serializers.CharField(), "type": serializers.CharField(),
    "role": serializers.CharField(), "model": serializers.CharField(),
    "content": serializers.ListField(child=serializers.DictField()),
    "stop_reason": serializers.CharField(), "stop_sequence": serializers.CharField(
        allow_null=True),
    "usage": inline_serializer("AnthropicUsage", {
        "input_tokens": serializers.IntegerField(), "output_tokens": serializers.IntegerField(),
        "cache_creation_input_tokens": serializers.IntegerField(),
        "cache_read_input_tokens": serializers.IntegerField()}),
})


def messages_context(request, data: dict, *, stream: bool = False) -> RequestContext:
    """Return the pipeline's RequestContext for a validated Messages request: the chat
    endpoint's, built from the same OpenAI-shaped body, recorded as endpoint `messages`."""
    chat_body = {"model": data["model"], "messages": chat_messages(data), **chat_params(data),
                 "stream": stream, "stream_options": {"include_usage": True}}
    ctx = context_from_request(request, chat_body)
    ctx.endpoint = Endpoint.MESSAGES
    return ctx


class MessagesApiView(AsyncAPIView):
    """Answers every error, authentication included, in Anthropic's shape."""

    def get_exception_handler(self):
        return messages_exception_handler


class MessageCreateApi(MessagesApiView):
    """POST /v1/messages — Anthropic's Messages API, streamed or not, on any provider."""

    InputSerializer = AnthropicMessageCreateInputSerializer

    @extend_schema(
        operation_id="message_create",
        request=AnthropicMessageCreateInputSerializer,
        responses={200: OpenApiResponse(_MESSAGE, description=(
            "An Anthropic message object, or Anthropic's event stream (message_start, "
            "content_block_*, message_delta, message_stop) when stream=true.")), **_ERRORS},
    )
    async def post(self, request):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        ctx = messages_context(request, data, stream=data["stream"])
        result = await answer(ctx)
        if isinstance(result, StreamResult):
            return event_stream_response(messages_sse(result.events, request_id=ctx.request_id),
                                         result.headers)
        return Response(message_body(result.body, request_id=ctx.request_id),
                        headers=result.headers)


class MessageCountTokensApi(MessagesApiView):
    """POST /v1/messages/count_tokens — the gateway's upper bound on the prompt tokens the
    routed model bills for this request (what admission reserves for it), not the provider's
    exact count. No model is called, nothing is charged and no ledger row is written."""

    InputSerializer = AnthropicCountTokensInputSerializer

    @extend_schema(
        operation_id="message_count_tokens",
        request=AnthropicCountTokensInputSerializer,
        responses={200: inline_serializer("AnthropicTokenCount", {
            "input_tokens": serializers.IntegerField()}), **_ERRORS},
    )
    async def post(self, request):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        ctx = messages_context(request, serializer.validated_data)
        decision = await route(ctx)
        return Response({"input_tokens": decision.prompt_bounds[decision.profile.name]},
                        headers={"X-LLMOps-Model": decision.profile.name,
                                 "X-Request-ID": ctx.request_id})
