"""Validation of Anthropic Messages requests: refuse bad input with a clear 400.

Only what the gateway can carry to every provider is accepted: text, image (base64 and url
sources), tool_use and tool_result blocks, custom tools. Thinking blocks in earlier assistant
turns are accepted and not forwarded; `cache_control` marks are accepted and ignored.
"""

import re

from django.conf import settings
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from llmops.api.serializers import FieldsBuiltOnceMixin

IMAGE_MEDIA_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")
# Anthropic's (and OpenAI's) rule for a tool name: it is also sent upstream as a function name.
TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
MAX_STOP_SEQUENCES = 4  # what every provider accepts (OpenAI's limit)
USER_BLOCKS = ("text", "image", "tool_result")
ASSISTANT_BLOCKS = ("text", "tool_use", "thinking", "redacted_thinking")
TOOL_RESULT_BLOCKS = ("text", "image")

_TEXT_BLOCK = {"type": "object", "properties": {
    "type": {"type": "string", "enum": ["text"]}, "text": {"type": "string"}},
    "required": ["type", "text"]}
_IMAGE_BLOCK = {"type": "object", "properties": {
    "type": {"type": "string", "enum": ["image"]},
    "source": {"oneOf": [
        {"type": "object", "properties": {
            "type": {"type": "string", "enum": ["base64"]},
            "media_type": {"type": "string", "enum": list(IMAGE_MEDIA_TYPES)},
            "data": {"type": "string"}}, "required": ["type", "media_type", "data"]},
        {"type": "object", "properties": {
            "type": {"type": "string", "enum": ["url"]}, "url": {"type": "string"}},
         "required": ["type", "url"]}]}},
    "required": ["type", "source"]}
_TOOL_USE_BLOCK = {"type": "object", "properties": {
    "type": {"type": "string", "enum": ["tool_use"]}, "id": {"type": "string"},
    "name": {"type": "string"}, "input": {"type": "object"}},
    "required": ["type", "id", "name", "input"]}
_TOOL_RESULT_BLOCK = {"type": "object", "properties": {
    "type": {"type": "string", "enum": ["tool_result"]}, "tool_use_id": {"type": "string"},
    "content": {"oneOf": [{"type": "string"},
                          {"type": "array", "items": {"oneOf": [_TEXT_BLOCK, _IMAGE_BLOCK]}}]},
    "is_error": {"type": "boolean"}},
    "required": ["type", "tool_use_id"]}


def _fail(where: str, message: str):
    raise serializers.ValidationError(f"{where} {message}")


def _check_text(block: dict, where: str) -> None:
    if not isinstance(block.get("text"), str):
        _fail(f"{where}.text", "must be a string.")


def _check_image(block: dict, where: str) -> None:
    source = block.get("source")
    if not isinstance(source, dict):
        _fail(f"{where}.source", "must be an object.")
    kind = source.get("type")
    if kind == "base64":
        if source.get("media_type") not in IMAGE_MEDIA_TYPES:
            _fail(f"{where}.source.media_type", f"must be one of {', '.join(IMAGE_MEDIA_TYPES)}.")
        data = source.get("data")
        if not isinstance(data, str) or not data:
            _fail(f"{where}.source.data", "must be a non-empty base64 string.")
    elif kind == "url":
        url = source.get("url")
        if not isinstance(url, str) or not url.startswith(("https://", "http://")):
            _fail(f"{where}.source.url", "must be an http(s) URL.")
    else:
        _fail(f"{where}.source.type", "must be 'base64' or 'url' (file sources are not "
                                      "supported by this gateway).")


def _check_tool_use(block: dict, where: str) -> None:
    if not isinstance(block.get("id"), str) or not block["id"]:
        _fail(f"{where}.id", "must be a non-empty string.")
    if not isinstance(block.get("name"), str) or not TOOL_NAME.match(block["name"]):
        _fail(f"{where}.name", "must be a tool name (letters, digits, _ and -, up to 64).")
    if not isinstance(block.get("input"), dict):
        _fail(f"{where}.input", "must be an object.")


def _check_tool_result(block: dict, where: str) -> None:
    if not isinstance(block.get("tool_use_id"), str) or not block["tool_use_id"]:
        _fail(f"{where}.tool_use_id", "must be a non-empty string.")
    if "is_error" in block and not isinstance(block["is_error"], bool):
        _fail(f"{where}.is_error", "must be a boolean.")
    content = block.get("content")
    if content is None or isinstance(content, str):
        return
    if not isinstance(content, list):
        _fail(f"{where}.content", "must be a string or a list of text and image blocks.")
    _check_blocks(content, f"{where}.content", TOOL_RESULT_BLOCKS)


_CHECKS = {"text": _check_text, "image": _check_image, "tool_use": _check_tool_use,
           "tool_result": _check_tool_result}


def _check_blocks(blocks: list, where: str, allowed: tuple[str, ...]) -> None:
    for index, block in enumerate(blocks):
        here = f"{where}[{index}]"
        kind = block.get("type") if isinstance(block, dict) else None
        if kind not in allowed:
            _fail(f"{here}.type", f"must be one of {', '.join(allowed)}"
                  + (f" (got {kind!r})." if isinstance(kind, str) else "."))
        check = _CHECKS.get(kind)
        if check is not None:
            check(block, here)


@extend_schema_field({"oneOf": [
    {"type": "string"},
    {"type": "array", "items": {"oneOf": [_TEXT_BLOCK, _IMAGE_BLOCK, _TOOL_USE_BLOCK,
                                          _TOOL_RESULT_BLOCK]}}]})
class ContentField(serializers.Field):
    """A message's content: a string or a list of content blocks (checked against the role by
    AnthropicMessageSerializer)."""

    def to_internal_value(self, data):
        if isinstance(data, str):
            return data
        if isinstance(data, list) and all(isinstance(block, dict) for block in data):
            return data
        raise serializers.ValidationError("content must be a string or a list of content "
                                          "blocks.")

    def to_representation(self, value):
        return value


class AnthropicMessageSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=("user", "assistant"))
    content = ContentField()

    def validate(self, attrs):
        if isinstance(attrs["content"], list):
            allowed = USER_BLOCKS if attrs["role"] == "user" else ASSISTANT_BLOCKS
            _check_blocks(attrs["content"], "content", allowed)
        return attrs


@extend_schema_field({"oneOf": [{"type": "string"},
                                {"type": "array", "items": _TEXT_BLOCK}]})
class SystemField(serializers.Field):
    """The system prompt: a string or a list of text blocks."""

    def to_internal_value(self, data):
        if isinstance(data, str):
            return data
        if isinstance(data, list):
            _check_blocks(data, "system", ("text",))
            return data
        raise serializers.ValidationError("system must be a string or a list of text blocks.")

    def to_representation(self, value):
        return value


class AnthropicToolSerializer(serializers.Serializer):
    type = serializers.CharField(required=False, allow_null=True, max_length=64)
    name = serializers.RegexField(TOOL_NAME, max_length=64)
    description = serializers.CharField(required=False, allow_blank=True)
    input_schema = serializers.DictField()

    def to_internal_value(self, data):
        # Before the fields: a server tool has no input_schema, and that is not what is wrong.
        kind = data.get("type") if isinstance(data, dict) else None
        if kind not in (None, "custom"):
            raise serializers.ValidationError(
                f"tool type {str(kind)[:64]!r} (an Anthropic server or client tool) is not "
                "supported by this gateway; define the tool with name, description and "
                "input_schema.")
        return super().to_internal_value(data)

    def validate(self, attrs):
        if attrs["input_schema"].get("type", "object") != "object":
            raise serializers.ValidationError({"input_schema": "type must be 'object'."})
        return attrs


class AnthropicToolChoiceSerializer(serializers.Serializer):
    type = serializers.ChoiceField(choices=("auto", "any", "tool", "none"))
    name = serializers.RegexField(TOOL_NAME, max_length=64, required=False)
    disable_parallel_tool_use = serializers.BooleanField(required=False, default=False)

    def validate(self, attrs):
        if attrs["type"] == "tool" and not attrs.get("name"):
            raise serializers.ValidationError({"name": "is required when type is 'tool'."})
        return attrs


class AnthropicMetadataSerializer(serializers.Serializer):
    user_id = serializers.CharField(required=False, allow_null=True, allow_blank=True,
                                    max_length=256)


class AnthropicOutputFormatSerializer(serializers.Serializer):
    type = serializers.ChoiceField(choices=("json_schema",))
    schema = serializers.DictField()


class AnthropicOutputConfigSerializer(serializers.Serializer):
    effort = serializers.ChoiceField(choices=("low", "medium", "high", "xhigh", "max"),
                                     required=False, allow_null=True,
                                     help_text="Accepted and not forwarded.")
    format = AnthropicOutputFormatSerializer(required=False, allow_null=True,
                                    help_text="Structured output: the answer is a JSON "
                                              "object matching `schema`.")


class AnthropicCountTokensInputSerializer(FieldsBuiltOnceMixin, serializers.Serializer):
    """The prompt of an Anthropic Messages request (what count_tokens counts)."""

    model = serializers.CharField(max_length=200, help_text='A model profile name, an alias, '
                                                            'or "auto".')
    messages = serializers.ListField(child=AnthropicMessageSerializer(), min_length=1,
                                     max_length=settings.LLMOPS_MAX_MESSAGES)
    system = SystemField(required=False, allow_null=True)
    tools = serializers.ListField(child=AnthropicToolSerializer(), required=False, max_length=128)
    tool_choice = AnthropicToolChoiceSerializer(required=False, allow_null=True)
    output_config = AnthropicOutputConfigSerializer(required=False, allow_null=True)

    def validate(self, attrs):
        choice = attrs.get("tool_choice")
        if choice and choice["type"] == "tool":
            names = {tool["name"] for tool in attrs.get("tools") or []}
            if choice["name"] not in names:
                raise serializers.ValidationError(
                    {"tool_choice": f"names tool {choice['name']!r}, which is not in tools."})
        return attrs


class AnthropicMessageCreateInputSerializer(AnthropicCountTokensInputSerializer):
    """The Anthropic Messages request (fields the gateway does not use are ignored)."""

    max_tokens = serializers.IntegerField(min_value=1,
                                          max_value=settings.LLMOPS_MAX_OUTPUT_TOKENS)
    stop_sequences = serializers.ListField(
        child=serializers.CharField(min_length=1, trim_whitespace=False), required=False,
        max_length=MAX_STOP_SEQUENCES)
    temperature = serializers.FloatField(required=False, allow_null=True, min_value=0,
                                         max_value=1)
    top_p = serializers.FloatField(required=False, allow_null=True, min_value=0, max_value=1)
    top_k = serializers.IntegerField(required=False, allow_null=True, min_value=0,
                                     help_text="Accepted and not forwarded: the gateway's "
                                               "provider contract has no top_k.")
    metadata = AnthropicMetadataSerializer(required=False, allow_null=True)
    stream = serializers.BooleanField(required=False, default=False)
