"""The OpenAI Responses API: POST /v1/responses, GET and DELETE /v1/responses/{id}."""

import re

from django.conf import settings
from django.http import StreamingHttpResponse
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.response import Response

from llmops.api.answering import event_stream_response, server_timing
from llmops.api.base import AsyncAPIView
from llmops.api.context import context_from_request
from llmops.api.schema import OPENAI_ERROR, OPENAI_ERRORS
from llmops.api.serializers import ChatCompletionInputSerializer, FieldsBuiltOnceMixin
from llmops.api.sse import sse_event
from llmops.db import run_db
from llmops.errors import GatewayError, InvalidRequest
from llmops.responses.gateway import response_create, response_stream
from llmops.responses.render import ResponseShell
from llmops.responses.selectors import stored_response_get
from llmops.responses.services import stored_response_delete
from llmops.responses.translate import chat_request

# What a response id can be (render.new_id); anything else is no stored response's id.
_RESPONSE_ID = re.compile(r"^resp_[0-9A-Za-z]{1,58}$")


class ResponseNotFound(GatewayError):
    status_code = status.HTTP_404_NOT_FOUND
    default_detail = "No response with this id."
    default_code = "response_not_found"


@extend_schema_field({
    "oneOf": [{"type": "string"},
              {"type": "array", "items": {"type": "object", "properties": {
                  "type": {"type": "string", "enum": ["message", "function_call",
                                                      "function_call_output"]},
                  "role": {"type": "string", "enum": ["user", "assistant", "system",
                                                      "developer"]}}}}],
})
class ResponseInputField(serializers.Field):
    """`input`: a string (one user message) or a list of input items (translate.py reads
    them, refusing what it cannot carry with the item's path)."""

    default_error_messages = {"invalid": "input must be a string or a list of input items."}

    def to_internal_value(self, data):
        if isinstance(data, str):
            return data
        if isinstance(data, list) and data:
            if len(data) > settings.LLMOPS_MAX_MESSAGES:
                raise serializers.ValidationError(
                    f"input may hold at most {settings.LLMOPS_MAX_MESSAGES} items.")
            return data
        self.fail("invalid")

    def to_representation(self, value):
        return value


class ResponseCreateInputSerializer(FieldsBuiltOnceMixin, serializers.Serializer):
    """The OpenAI Responses request (fields llmops does not use are ignored)."""

    model = serializers.CharField(max_length=200, help_text='A model profile name, an alias, '
                                                            'or "auto".')
    input = ResponseInputField()
    instructions = serializers.CharField(required=False, allow_null=True, allow_blank=True,
                                         trim_whitespace=False)
    tools = serializers.ListField(child=serializers.DictField(), required=False, max_length=128,
                                  help_text="Function tools (Responses' flat shape).")
    tool_choice = serializers.JSONField(required=False, allow_null=True)
    parallel_tool_calls = serializers.BooleanField(required=False, allow_null=True)
    max_output_tokens = serializers.IntegerField(required=False, allow_null=True, min_value=1,
                                                 max_value=settings.LLMOPS_MAX_OUTPUT_TOKENS)
    temperature = serializers.FloatField(required=False, allow_null=True, min_value=0,
                                         max_value=2)
    top_p = serializers.FloatField(required=False, allow_null=True, min_value=0, max_value=1)
    text = serializers.DictField(required=False, allow_null=True,
                                 help_text='{"format": {"type": "text" | "json_object" | '
                                           '"json_schema", ...}}')
    metadata = serializers.DictField(required=False, allow_null=True)
    stream = serializers.BooleanField(required=False, default=False)
    store = serializers.BooleanField(required=False, default=True,
                                     help_text="Keep the response for GET and follow-ups "
                                               "(RESPONSES_STORE_TTL_DAYS).")
    previous_response_id = serializers.CharField(required=False, allow_null=True,
                                                 max_length=64)
    user = serializers.CharField(required=False, max_length=256, allow_blank=True)
    background = serializers.BooleanField(required=False, allow_null=True)
    conversation = serializers.JSONField(required=False, allow_null=True)

    def validate_metadata(self, value):
        if value is not None and len(value) > 16:
            raise serializers.ValidationError("metadata may hold at most 16 keys.")
        return value

    def validate_background(self, value):
        if value:
            raise serializers.ValidationError("background responses are not supported by "
                                              "llmops.")
        return value

    def validate_conversation(self, value):
        if value is not None:
            raise serializers.ValidationError("conversations are not supported by llmops: "
                                              "use previous_response_id.")
        return value


async def _history(team_id: int, previous_response_id: str | None) -> list[dict]:
    """Return the stored conversation a follow-up continues (none without an id)."""
    if not previous_response_id:
        return []
    stored = None
    if _RESPONSE_ID.match(previous_response_id):
        stored = await run_db(stored_response_get, team_id=team_id,
                              response_id=previous_response_id)
    if stored is None:
        raise InvalidRequest(f"Previous response with id '{previous_response_id}' not found.",
                             code="previous_response_not_found", param="previous_response_id")
    return stored.conversation


def _chat_data(chat: dict) -> dict:
    """Return the translated request validated as the chat request the pipeline runs (its
    limits on messages, tools and parameters apply here too)."""
    serializer = ChatCompletionInputSerializer(data=chat)
    if not serializer.is_valid():
        raise serializers.ValidationError({"input": serializer.errors})
    return serializer.validated_data


def _event_stream(events) -> StreamingHttpResponse:
    async def encoded():
        try:
            async for name, data in events:
                yield sse_event(data, event=name)
        finally:
            await events.aclose()  # a client that left: the relay settles what it relayed

    return event_stream_response(encoded(), {})


class ResponseCreateApi(AsyncAPIView):
    """POST /v1/responses — OpenAI's Responses API, streamed or not, run through the same
    pipeline as chat completions."""

    InputSerializer = ResponseCreateInputSerializer

    @extend_schema(
        operation_id="response_create",
        request=ResponseCreateInputSerializer,
        responses={200: OpenApiResponse(description="A response object, or the Responses "
                                        "event stream (text/event-stream) when stream=true."),
                   **OPENAI_ERRORS},
    )
    async def post(self, request):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        history = await _history(request.auth.team_id, data.get("previous_response_id"))
        chat, conversation = chat_request(data, history)
        ctx = context_from_request(request, _chat_data(chat))
        shell = ResponseShell(request=dict(data))
        if ctx.stream:
            result = await response_stream(ctx, shell, conversation)
            response = _event_stream(result.events)
        else:
            result = await response_create(ctx, shell, conversation)
            response = Response(result.body)
        timing = server_timing(ctx.timings)
        if timing:
            result.headers["Server-Timing"] = timing
        for name, value in result.headers.items():
            response[name] = value
        return response


class ResponseDetailApi(AsyncAPIView):
    """GET / DELETE /v1/responses/{id} — a stored response of the caller's team."""

    @extend_schema(operation_id="response_retrieve",
                   responses={200: OpenApiResponse(description="The stored response object."),
                              401: OpenApiResponse(OPENAI_ERROR),
                              404: OpenApiResponse(OPENAI_ERROR)})
    async def get(self, request, response_id: str):
        stored = None
        if _RESPONSE_ID.match(response_id):
            stored = await run_db(stored_response_get, team_id=request.auth.team_id,
                                  response_id=response_id)
        if stored is None:
            raise ResponseNotFound(f"Response with id '{response_id}' not found.")
        return Response(stored.body)

    @extend_schema(operation_id="response_delete",
                   responses={200: OpenApiResponse(description='{"id", "object": "response", '
                                                               '"deleted": true}'),
                              401: OpenApiResponse(OPENAI_ERROR),
                              404: OpenApiResponse(OPENAI_ERROR)})
    async def delete(self, request, response_id: str):
        deleted = _RESPONSE_ID.match(response_id) and await run_db(
            stored_response_delete, team_id=request.auth.team_id, response_id=response_id)
        if not deleted:
            raise ResponseNotFound(f"Response with id '{response_id}' not found.")
        return Response({"id": response_id, "object": "response", "deleted": True})
