"""Anthropic Messages ⇄ the pipeline's OpenAI shape: the request in, the message object out.

The pipeline speaks Chat Completions (llmops/providers/base.py): system and tool results become
messages of their own, images become `image_url` parts (base64 sources as `data:` URLs), tool
definitions become functions. Every provider adapter then sends them in its own wire format,
the Anthropic one back to Anthropic's blocks.
"""

import json

# OpenAI finish_reason → Anthropic stop_reason. A stop on one of `stop_sequences` cannot be
# told apart from a natural end through the pipeline: both are `end_turn`.
STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use",
                "function_call": "tool_use", "content_filter": "refusal"}


def stop_reason(finish_reason: str | None) -> str:
    """Return Anthropic's stop_reason for an OpenAI finish_reason."""
    return STOP_REASONS.get(finish_reason or "stop", "end_turn")


# --- Request: Anthropic → OpenAI ---------------------------------------------------------------


def _system_text(system) -> str:
    if isinstance(system, str):
        return system
    return "\n\n".join(block["text"] for block in system or [] if block.get("text"))


def _image_part(block: dict) -> dict:
    source = block["source"]
    if source["type"] == "base64":
        url = f"data:{source['media_type']};base64,{source['data']}"
    else:
        url = source["url"]
    return {"type": "image_url", "image_url": {"url": url}}


def _text_part(text: str) -> dict:
    return {"type": "text", "text": text}


def _tool_result_messages(block: dict) -> tuple[dict, list[dict]]:
    """Return (the tool message, image parts to send after it) for a tool_result block."""
    content = block.get("content")
    images: list[dict] = []
    if isinstance(content, list):
        text = "\n".join(part["text"] for part in content if part["type"] == "text")
        images = [_image_part(part) for part in content if part["type"] == "image"]
    else:
        text = content or ""
    if block.get("is_error"):
        text = f"Error: {text}" if text else "Error"
    return {"role": "tool", "tool_call_id": block["tool_use_id"], "content": text}, images


def _user_messages(content) -> list[dict]:
    """Return the OpenAI messages of one user turn: its tool results first (each a `tool`
    message; a result's images follow them in a user message), then its text and images."""
    if isinstance(content, str):
        return [{"role": "user", "content": content}]
    results: list[dict] = []
    result_images: list[dict] = []
    parts: list[dict] = []
    for block in content:
        if block["type"] == "tool_result":
            message, images = _tool_result_messages(block)
            results.append(message)
            result_images.extend(images)
        elif block["type"] == "text":
            parts.append(_text_part(block["text"]))
        elif block["type"] == "image":
            parts.append(_image_part(block))
    if result_images or parts:
        results.append({"role": "user", "content": result_images + parts})
    return results


def _assistant_message(content) -> dict:
    if isinstance(content, str):
        return {"role": "assistant", "content": content}
    text = "".join(block["text"] for block in content if block["type"] == "text")
    calls = [{"id": block["id"], "type": "function",
              "function": {"name": block["name"],
                           "arguments": json.dumps(block["input"], ensure_ascii=False)}}
             for block in content if block["type"] == "tool_use"]
    message: dict = {"role": "assistant", "content": text if text or not calls else None}
    if calls:
        message["tool_calls"] = calls
    return message


def chat_messages(data: dict) -> list[dict]:
    """Return the OpenAI-shaped messages of a validated Messages request (system first)."""
    messages: list[dict] = []
    system = _system_text(data.get("system"))
    if system:
        messages.append({"role": "system", "content": system})
    for message in data["messages"]:
        if message["role"] == "user":
            messages.extend(_user_messages(message["content"]))
        else:
            messages.append(_assistant_message(message["content"]))
    return messages


def _tool_choice(choice: dict | None) -> tuple[object, bool | None]:
    """Return (OpenAI tool_choice, parallel_tool_calls) for Anthropic's tool_choice."""
    if not choice:
        return None, None
    parallel = False if choice.get("disable_parallel_tool_use") else None
    kind = choice["type"]
    if kind == "tool":
        return {"type": "function", "function": {"name": choice["name"]}}, parallel
    return {"auto": "auto", "any": "required", "none": "none"}[kind], parallel


def chat_params(data: dict) -> dict:
    """Return the OpenAI-named generation parameters of a validated Messages request (as the
    chat endpoint's validated body holds them)."""
    params: dict = {"max_tokens": data.get("max_tokens")}
    for name in ("temperature", "top_p"):
        params[name] = data.get(name)
    if data.get("stop_sequences"):
        params["stop"] = list(data["stop_sequences"])
    tools = data.get("tools") or []
    if tools:
        params["tools"] = [
            {"type": "function", "function": {
                "name": tool["name"], "parameters": tool["input_schema"],
                **({"description": tool["description"]} if tool.get("description") else {})}}
            for tool in tools]
        params["tool_choice"], params["parallel_tool_calls"] = _tool_choice(
            data.get("tool_choice"))
    output_format = (data.get("output_config") or {}).get("format")
    if output_format:
        params["response_format"] = {"type": "json_schema", "json_schema": {
            "name": "output", "schema": output_format["schema"]}}
    user = (data.get("metadata") or {}).get("user_id")
    if user:
        params["user"] = user
    return {name: value for name, value in params.items() if value is not None}


# --- Answer: OpenAI → Anthropic ----------------------------------------------------------------


def tool_input(arguments: str | None) -> dict:
    """Return a tool call's arguments as the `input` object of a tool_use block (a model's
    arguments that are not a JSON object are kept whole under `_arguments`)."""
    try:
        value = json.loads(arguments or "{}")
    except ValueError:
        return {"_arguments": arguments}
    return value if isinstance(value, dict) else {"_arguments": value}


def content_blocks(message: dict) -> list[dict]:
    """Return the content blocks of an OpenAI-shaped assistant message."""
    blocks: list[dict] = []
    if message.get("content"):
        blocks.append({"type": "text", "text": message["content"]})
    for call in message.get("tool_calls") or []:
        function = call.get("function") or {}
        blocks.append({"type": "tool_use", "id": call.get("id") or "",
                       "name": function.get("name") or "",
                       "input": tool_input(function.get("arguments"))})
    return blocks


def anthropic_usage(usage: dict) -> dict:
    """Return Anthropic's usage object for an OpenAI one: `input_tokens` excludes cache reads,
    as Anthropic counts them; the gateway's `cost` and `llmops` explanation ride along."""
    cached = int((usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0)
    body = {"input_tokens": max(int(usage.get("prompt_tokens") or 0) - cached, 0),
            "output_tokens": int(usage.get("completion_tokens") or 0),
            "cache_creation_input_tokens": 0, "cache_read_input_tokens": cached}
    for extra in ("cost", "llmops"):
        if extra in usage:
            body[extra] = usage[extra]
    return body


def message_id(request_id: str) -> str:
    return f"msg_{request_id}"


def message_body(completion: dict, *, request_id: str) -> dict:
    """Return the Anthropic `message` object for a `chat.completion` body."""
    choice = completion["choices"][0]
    return {
        "id": message_id(request_id),
        "type": "message",
        "role": "assistant",
        "model": completion["model"],
        "content": content_blocks(choice["message"]),
        "stop_reason": stop_reason(choice.get("finish_reason")),
        "stop_sequence": None,
        "usage": anthropic_usage(completion.get("usage") or {}),
    }
