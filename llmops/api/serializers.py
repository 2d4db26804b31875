"""Request validation for the OpenAI-compatible API: refuse bad input with a clear 400."""

from django.conf import settings
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

# Text no string may hold (lone surrogates, NUL) is refused for the whole body by the parser
# (llmops/api/parsers.py), before any field is looked at.
ROLES = ("system", "developer", "user", "assistant", "tool", "function")
CONTENT_PART_TYPES = ("text", "image_url", "input_audio", "file", "refusal")


@extend_schema_field({
    "oneOf": [
        {"type": "string"},
        {"type": "array", "items": {"type": "object", "properties": {
            "type": {"type": "string", "enum": list(CONTENT_PART_TYPES)},
            "text": {"type": "string"}}, "required": ["type"]}},
    ],
    "nullable": True,
})
class MessageContentField(serializers.Field):
    """A message's content: a string, a list of content parts, or null (assistant tool calls)."""

    default_error_messages = {
        "invalid": "content must be a string, a list of content parts, or null.",
    }

    def to_internal_value(self, data):
        if isinstance(data, str):
            return data
        if isinstance(data, list):
            for index, part in enumerate(data):
                if not isinstance(part, dict) or part.get("type") not in CONTENT_PART_TYPES:
                    raise serializers.ValidationError(
                        f"content[{index}] must be an object whose type is one of "
                        f"{', '.join(CONTENT_PART_TYPES)}."
                    )
                if part["type"] == "text" and not isinstance(part.get("text"), str):
                    raise serializers.ValidationError(f"content[{index}].text must be a string.")
            return data
        self.fail("invalid")

    def to_representation(self, value):
        return value


class MessageSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=ROLES)
    content = MessageContentField(allow_null=True, required=False)
    name = serializers.CharField(required=False, max_length=256)
    tool_calls = serializers.ListField(child=serializers.DictField(), required=False)
    tool_call_id = serializers.CharField(required=False, max_length=256)

    def validate(self, attrs):
        if attrs["role"] == "assistant":
            if "content" not in attrs and not attrs.get("tool_calls"):
                raise serializers.ValidationError("An assistant message needs content or "
                                                  "tool_calls.")
        elif attrs["role"] == "tool":
            if not attrs.get("tool_call_id"):
                raise serializers.ValidationError("A tool message needs tool_call_id.")
        elif "content" not in attrs or attrs.get("content") is None:
            raise serializers.ValidationError(f"A {attrs['role']} message needs content.")
        return attrs


class StreamOptionsSerializer(serializers.Serializer):
    include_usage = serializers.BooleanField(required=False, default=False)


@extend_schema_field({
    "oneOf": [{"type": "string"},
              {"type": "array", "items": {"type": "string"}, "maxItems": 4}],
    "nullable": True,
})
class StopField(serializers.Field):
    default_error_messages = {"invalid": "stop must be a string or a list of up to 4 strings."}

    def to_internal_value(self, data):
        if isinstance(data, str):
            return data
        if isinstance(data, list) and len(data) <= 4 and all(isinstance(s, str) for s in data):
            return data
        self.fail("invalid")

    def to_representation(self, value):
        return value


def _max_tokens_field() -> serializers.IntegerField:
    return serializers.IntegerField(
        required=False, allow_null=True, min_value=1,
        max_value=settings.LLMOPS_MAX_OUTPUT_TOKENS,
    )


class FieldsBuiltOnceMixin:
    """Build a serializer class's fields once, not on every instantiation.

    DRF deep-copies every declared field, nested serializers included, each time a serializer
    is instantiated (`Serializer.fields` -> `get_fields` -> `copy.deepcopy`): for the chat
    request that re-creates ~40 fields per request, most of the cost of validating it. The
    copies exist so that a field can hold per-instance state; these request serializers give
    their fields none (no `context`, `instance` or `partial`, no field reads them), and a
    validation keeps its errors and data on the serializer instance, so one set of bound fields
    serves every instance of the class, concurrently too.
    """

    @property
    def fields(self):
        cls = type(self)
        shared = cls.__dict__.get("_fields_built_once")
        if shared is None:
            shared = super().fields
            cls._fields_built_once = shared
        return shared


class ChatCompletionInputSerializer(FieldsBuiltOnceMixin, serializers.Serializer):
    """The OpenAI Chat Completions request (fields llmops does not use are ignored)."""

    model = serializers.CharField(max_length=200, help_text='A model profile name, or "auto".')
    messages = serializers.ListField(
        child=MessageSerializer(), min_length=1, allow_empty=False,
        max_length=settings.LLMOPS_MAX_MESSAGES,
    )
    temperature = serializers.FloatField(required=False, allow_null=True, min_value=0,
                                         max_value=2)
    top_p = serializers.FloatField(required=False, allow_null=True, min_value=0, max_value=1)
    max_tokens = _max_tokens_field()
    max_completion_tokens = _max_tokens_field()
    stop = StopField(required=False, allow_null=True)
    stream = serializers.BooleanField(required=False, default=False)
    stream_options = StreamOptionsSerializer(required=False, allow_null=True)
    n = serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=128)
    user = serializers.CharField(required=False, max_length=256, allow_blank=True)
    metadata = serializers.DictField(required=False, allow_null=True)
    tools = serializers.ListField(child=serializers.DictField(), required=False, max_length=128)
    tool_choice = serializers.JSONField(required=False, allow_null=True)
    parallel_tool_calls = serializers.BooleanField(required=False, allow_null=True)
    response_format = serializers.DictField(required=False, allow_null=True)
    seed = serializers.IntegerField(required=False, allow_null=True)
    presence_penalty = serializers.FloatField(required=False, allow_null=True, min_value=-2,
                                              max_value=2)
    frequency_penalty = serializers.FloatField(required=False, allow_null=True, min_value=-2,
                                               max_value=2)
    logit_bias = serializers.DictField(child=serializers.FloatField(min_value=-100,
                                                                    max_value=100),
                                       required=False, allow_null=True)

    def validate_n(self, value):
        if value not in (None, 1):
            raise serializers.ValidationError(
                "n > 1 is not supported by llmops: send n separate requests.")
        return value

    def validate_metadata(self, value):
        if value is not None and len(value) > 16:
            raise serializers.ValidationError("metadata may hold at most 16 keys.")
        return value


FORWARDED_PARAMS = (
    "temperature", "top_p", "max_tokens", "max_completion_tokens", "stop", "tools",
    "tool_choice", "parallel_tool_calls", "response_format", "seed", "presence_penalty",
    "frequency_penalty", "logit_bias", "user",
)
