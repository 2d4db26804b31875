"""Validation of Messages requests (llmops/api/messages/serializers.py)."""

from llmops.api.messages.serializers import (
    AnthropicCountTokensInputSerializer,
    AnthropicMessageCreateInputSerializer,
)

CLAUDE_CODE_LIKE = {
    "model": "auto", "max_tokens": 32000, "stream": True,
    "system": [{"type": "text", "text": "You are a coding agent.",
                "cache_control": {"type": "ephemeral"}}],
    "messages": [
        {"role": "user", "content": [{"type": "text", "text": "List the files."}]},
        {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "Use ls.", "signature": "sig"},
            {"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {"command": "ls"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1",
                                      "content": [{"type": "text", "text": "a.py b.py"}],
                                      "cache_control": {"type": "ephemeral"}}]},
    ],
    "tools": [{"name": "Bash", "description": "Run a command.",
               "input_schema": {"type": "object", "properties": {
                   "command": {"type": "string"}}}}],
    "tool_choice": {"type": "auto"},
    "metadata": {"user_id": "user-1"},
    "thinking": {"type": "enabled", "budget_tokens": 1024},
    "temperature": 1, "top_k": 40,
}


def test_an_agents_request_is_valid():
    serializer = AnthropicMessageCreateInputSerializer(data=CLAUDE_CODE_LIKE)
    assert serializer.is_valid(), serializer.errors
    data = serializer.validated_data
    assert data["stream"] is True and data["top_k"] == 40
    assert "thinking" not in data  # accepted, not forwarded


def test_count_tokens_needs_no_max_tokens():
    body = {key: value for key, value in CLAUDE_CODE_LIKE.items() if key != "max_tokens"}
    assert AnthropicCountTokensInputSerializer(data=body).is_valid()
    assert not AnthropicMessageCreateInputSerializer(data=body).is_valid()


def test_errors_name_the_block():
    body = {**CLAUDE_CODE_LIKE, "messages": [{"role": "user", "content": [
        {"type": "text", "text": "x"}, {"type": "image", "source": {"type": "file",
                                                                  "file_id": "f"}}]}]}
    serializer = AnthropicMessageCreateInputSerializer(data=body)
    assert not serializer.is_valid()
    message = str(serializer.errors["messages"][0]["non_field_errors"][0])
    assert message.startswith("content[1].source.type must be 'base64' or 'url'")
