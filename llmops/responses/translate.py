"""Translate a Responses API request into the chat request the gateway pipeline runs.

The pipeline speaks OpenAI Chat Completions internally (messages, tools, response_format); this
module maps the Responses shapes onto it so that the cache, routing, the reservation (tool
definitions and images included) and every provider adapter work on a Responses request
unchanged. Anything the gateway cannot carry out is refused with a 400 naming the field.
"""

from llmops.errors import InvalidRequest

MESSAGE_ROLES = ("user", "assistant", "system", "developer")
# Items the gateway can carry into a chat conversation; every other type is refused.
ITEM_TYPES = ("message", "function_call", "function_call_output")
# Reasoning items carry nothing a chat model reads back (their content is the provider's own,
# often encrypted); clients such as the Agents SDK send them back with every turn.
SKIPPED_ITEM_TYPES = ("reasoning",)


def _refuse(message: str, param: str) -> InvalidRequest:
    return InvalidRequest(message, param=param)


def _text(value, param: str) -> str:
    if not isinstance(value, str):
        raise _refuse(f"{param} must be a string.", param)
    return value


def _content_part(part, param: str) -> dict:
    """Return the chat content part of one Responses input content part."""
    if not isinstance(part, dict):
        raise _refuse(f"{param} must be an object.", param)
    kind = part.get("type")
    if kind in ("input_text", "output_text", "text"):
        return {"type": "text", "text": _text(part.get("text"), f"{param}.text")}
    if kind == "refusal":
        return {"type": "text", "text": _text(part.get("refusal"), f"{param}.refusal")}
    if kind == "input_image":
        url = part.get("image_url")
        if not isinstance(url, str) or not url:
            raise _refuse("input_image needs image_url (a URL or a data: URL); file_id is not "
                          "supported by llmops.", f"{param}.image_url")
        image = {"url": url}
        if part.get("detail") is not None:
            if part["detail"] not in ("auto", "low", "high"):
                raise _refuse("detail must be auto, low or high.", f"{param}.detail")
            image["detail"] = part["detail"]
        return {"type": "image_url", "image_url": image}
    raise _refuse(f"Content part type {kind!r} is not supported by llmops (input_text, "
                  "input_image and output_text are).", f"{param}.type")


def _message(item: dict, param: str) -> dict:
    role = item.get("role")
    if role not in MESSAGE_ROLES:
        raise _refuse(f"role must be one of {', '.join(MESSAGE_ROLES)}.", f"{param}.role")
    content = item.get("content")
    if isinstance(content, str):
        return {"role": role, "content": content}
    if not isinstance(content, list):
        raise _refuse("content must be a string or a list of content parts.", f"{param}.content")
    parts = [_content_part(p, f"{param}.content[{i}]") for i, p in enumerate(content)]
    if role != "user" and any(p["type"] != "text" for p in parts):
        raise _refuse(f"A {role} message may hold text only.", f"{param}.content")
    if role == "assistant":  # chat assistant messages take a string
        return {"role": role, "content": "".join(p["text"] for p in parts)}
    return {"role": role, "content": parts}


def _function_call(item: dict, param: str) -> dict:
    call_id = item.get("call_id")
    if not isinstance(call_id, str) or not call_id:
        raise _refuse("A function_call item needs call_id.", f"{param}.call_id")
    return {"id": call_id, "type": "function",
            "function": {"name": _text(item.get("name"), f"{param}.name"),
                         "arguments": _text(item.get("arguments"), f"{param}.arguments")}}


def _function_output(item: dict, param: str) -> dict:
    call_id = item.get("call_id")
    if not isinstance(call_id, str) or not call_id:
        raise _refuse("A function_call_output item needs call_id.", f"{param}.call_id")
    output = item.get("output")
    if isinstance(output, list):  # a list of output parts: a chat tool message takes text
        parts = [_content_part(p, f"{param}.output[{i}]") for i, p in enumerate(output)]
        if any(p["type"] != "text" for p in parts):
            raise _refuse("function_call_output may hold text only.", f"{param}.output")
        output = "".join(p["text"] for p in parts)
    return {"role": "tool", "tool_call_id": call_id, "content": _text(output, f"{param}.output")}


def chat_messages(input_value) -> list[dict]:
    """Return the chat messages of a Responses `input` (a string or a list of items).

    Consecutive function_call items become one assistant message with their tool calls (joined
    to the assistant message right before them, if any), as a chat conversation has them.
    """
    if isinstance(input_value, str):
        return [{"role": "user", "content": input_value}]
    if not isinstance(input_value, list):
        raise _refuse("input must be a string or a list of input items.", "input")
    messages: list[dict] = []
    for index, item in enumerate(input_value):
        param = f"input[{index}]"
        if not isinstance(item, dict):
            raise _refuse(f"{param} must be an object.", param)
        kind = item.get("type", "message")
        if kind in SKIPPED_ITEM_TYPES:
            continue
        if kind not in ITEM_TYPES:
            raise _refuse(f"Input item type {kind!r} is not supported by llmops (one of "
                          f"{', '.join(ITEM_TYPES)}).", f"{param}.type")
        if kind == "message":
            messages.append(_message(item, param))
        elif kind == "function_call_output":
            messages.append(_function_output(item, param))
        else:
            call = _function_call(item, param)
            last = messages[-1] if messages else None
            if last is not None and last["role"] == "assistant":
                last.setdefault("tool_calls", []).append(call)
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
    if not messages:
        raise _refuse("input holds no message.", "input")
    return messages


def chat_tools(tools: list[dict]) -> list[dict]:
    """Return chat tools for Responses' flat function tools; other tool types are refused."""
    converted = []
    for index, tool in enumerate(tools):
        param = f"tools[{index}]"
        if tool.get("type") != "function":
            raise _refuse(f"Tool type {tool.get('type')!r} is not supported by llmops: only "
                          "function tools are.", f"{param}.type")
        function = {"name": _text(tool.get("name"), f"{param}.name")}
        if tool.get("description") is not None:
            function["description"] = _text(tool["description"], f"{param}.description")
        if tool.get("parameters") is not None:
            if not isinstance(tool["parameters"], dict):
                raise _refuse("parameters must be a JSON schema object.", f"{param}.parameters")
            function["parameters"] = tool["parameters"]
        if tool.get("strict") is not None:
            function["strict"] = bool(tool["strict"])
        converted.append({"type": "function", "function": function})
    return converted


def chat_tool_choice(choice):
    """Return the chat tool_choice for a Responses one ("auto", "none", "required", or a
    named function)."""
    if choice in ("auto", "none", "required"):
        return choice
    if isinstance(choice, dict) and choice.get("type") == "function" and isinstance(
            choice.get("name"), str):
        return {"type": "function", "function": {"name": choice["name"]}}
    raise _refuse('tool_choice must be "auto", "none", "required" or {"type": "function", '
                  '"name": ...}.', "tool_choice")


def chat_response_format(text: dict) -> dict | None:
    """Return the chat response_format for a Responses `text.format` (None for plain text)."""
    fmt = text.get("format")
    if fmt is None:
        return None
    if not isinstance(fmt, dict):
        raise _refuse("text.format must be an object.", "text.format")
    kind = fmt.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        return {"type": "json_object"}
    if kind == "json_schema":
        if not isinstance(fmt.get("schema"), dict):
            raise _refuse("A json_schema format needs schema (an object).", "text.format.schema")
        schema = {"name": _text(fmt.get("name"), "text.format.name"), "schema": fmt["schema"]}
        for optional in ("description", "strict"):
            if fmt.get(optional) is not None:
                schema[optional] = fmt[optional]
        return {"type": "json_schema", "json_schema": schema}
    raise _refuse("text.format.type must be text, json_object or json_schema.",
                  "text.format.type")


def chat_request(data: dict, history: list[dict]) -> tuple[dict, list[dict]]:
    """Return `(chat request, conversation)` for a validated Responses request.

    The conversation is `history` (a stored response's) followed by this request's input: what
    a follow-up continues from. The chat request puts `instructions` before it, as a system
    message, and carries the generation parameters under their chat names.
    """
    conversation = [*history, *chat_messages(data["input"])]
    messages = list(conversation)
    if data.get("instructions"):
        messages.insert(0, {"role": "system", "content": data["instructions"]})
    chat: dict = {"model": data["model"], "messages": messages,
                  "stream": data.get("stream", False),
                  "stream_options": {"include_usage": True},
                  "metadata": data.get("metadata") or None}
    for name in ("temperature", "top_p", "parallel_tool_calls", "user"):
        if data.get(name) is not None:
            chat[name] = data[name]
    if data.get("max_output_tokens") is not None:
        chat["max_completion_tokens"] = data["max_output_tokens"]
    if data.get("tools"):
        chat["tools"] = chat_tools(data["tools"])
    if data.get("tool_choice") is not None:
        chat["tool_choice"] = chat_tool_choice(data["tool_choice"])
    if data.get("text"):
        response_format = chat_response_format(data["text"])
        if response_format is not None:
            chat["response_format"] = response_format
    return chat, conversation

