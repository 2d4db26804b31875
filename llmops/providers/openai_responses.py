"""The OpenAI Responses wire format (`POST {base}/responses`), for profiles that speak it natively.

The gateway's call is in Chat Completions shape; this module translates it to a Responses
request (system messages → `instructions`, messages → input items, tool calls and results →
`function_call` / `function_call_output` items, flat function tools, `text.format`) and reads
the `response` object and the Responses event stream back into `Completion` and `Delta`s.
`store` is always false: the gateway keeps conversations itself (previous_response_id is
resolved before the call), so nothing is left stored at the provider.

Endpoint and key rules are the Chat Completions adapter's (`OpenAIChatAdapter.endpoint`): the
same account and key (OPENAI_API_KEY) serve both endpoints.
"""

from llmops.providers import errors
from llmops.providers.base import (
    Completion,
    Delta,
    Embeddings,
    ProviderCall,
    Usage,
    check_options,
    content_text,
)
from llmops.providers.http import HTTPRequest
from llmops.providers.openai_chat import OPTIONS, OpenAIChatAdapter, openai_request
from llmops.providers.sse import SSEEvent, StreamDecoder, load_json

#: Chat parameters with a Responses equivalent (translated in `responses_params`).
_TRANSLATED_PARAMS = frozenset({
    "temperature", "top_p", "max_tokens", "max_completion_tokens", "tools", "tool_choice",
    "parallel_tool_calls", "response_format", "user", "metadata", "reasoning_effort",
    "verbosity", "service_tier", "prompt_cache_key", "safety_identifier", "n", "store",
})
#: Sampling nudges the Responses API lacks: dropped, so a request written for a chat model still
#: runs here (e.g. after a fallback); none of them changes what the answer may contain.
_DROPPED_PARAMS = frozenset({"seed", "presence_penalty", "frequency_penalty", "logit_bias"})
#: set by the adapter itself; ignored if the gateway passes them along
_OWNED_PARAMS = frozenset({"model", "messages", "stream", "stream_options"})
_PASSED_AS_IS = ("temperature", "top_p", "parallel_tool_calls", "service_tier",
                 "prompt_cache_key", "safety_identifier", "user")

#: adapter options a profile may set: the Chat Completions adapter's (but `stream_usage`: the
#: Responses stream always ends with its usage), and `min_output_tokens`, the least
#: `max_output_tokens` the server takes (OpenAI's is 16: the registry entry's default)
RESPONSES_OPTIONS = (OPTIONS - {"stream_usage"}) | {"min_output_tokens"}

#: Responses' `incomplete_details.reason` → the chat finish_reason.
INCOMPLETE_FINISH = {"max_output_tokens": "length", "content_filter": "content_filter"}


# --- Chat → Responses ------------------------------------------------------------------------
def _input_part(part: dict) -> dict:
    kind = part.get("type") if isinstance(part, dict) else None
    if kind == "text":
        return {"type": "input_text", "text": part.get("text", "")}
    if kind == "image_url":
        image = part.get("image_url")
        image = image if isinstance(image, dict) else {"url": str(image or "")}
        converted = {"type": "input_image", "image_url": image.get("url", "")}
        converted["detail"] = image.get("detail") or "auto"
        return converted
    if kind == "file":
        file = part.get("file") or {}
        converted = {"type": "input_file"}
        for name in ("file_data", "file_id", "filename"):
            if file.get(name):
                converted[name] = file[name]
        return converted
    raise errors.ProviderBadRequest(
        f"content part type {kind!r} is not supported by the Responses API")


def _input_message(message: dict) -> dict:
    role, content = message["role"], message.get("content")
    if role == "assistant" or isinstance(content, str) or content is None:
        # An assistant turn is sent back as its text (the easy input message form).
        return {"role": role, "content": content_text(content)}
    return {"role": role, "content": [_input_part(part) for part in content]}


def responses_input(messages: list[dict]) -> tuple[str, list[dict]]:
    """Return `(instructions, input items)` for chat `messages`: system messages join into
    the instructions; an assistant's tool calls become `function_call` items after its text,
    tool messages `function_call_output` items."""
    instructions: list[str] = []
    items: list[dict] = []
    for message in messages:
        role = message.get("role")
        if role == "system":
            instructions.append(content_text(message.get("content")))
        elif role == "tool":
            items.append({"type": "function_call_output", "call_id": message["tool_call_id"],
                          "output": content_text(message.get("content"))})
        elif role in ("user", "assistant", "developer"):
            if role != "assistant" or content_text(message.get("content")):
                items.append(_input_message(message))
            for call in message.get("tool_calls") or []:
                function = call.get("function") or {}
                items.append({"type": "function_call", "call_id": call["id"],
                              "name": function.get("name", ""),
                              "arguments": function.get("arguments") or "{}"})
        else:
            raise errors.ProviderBadRequest(f"message role {role!r} is not supported")
    return "\n\n".join(part for part in instructions if part), items


def _tool(tool: dict) -> dict:
    if tool.get("type", "function") != "function":
        raise errors.ProviderBadRequest(f"tool type {tool.get('type')!r} is not supported")
    function = tool.get("function") or {}
    flat = {"type": "function", "name": function.get("name", ""),
            "parameters": function.get("parameters") or {"type": "object", "properties": {}}}
    for name in ("description", "strict"):
        if function.get(name) is not None:
            flat[name] = function[name]
    return flat


def _tool_choice(choice):
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name") or choice.get("name")
        return {"type": "function", "name": name}
    return choice  # "auto", "none", "required"


def _text_format(response_format: dict) -> dict | None:
    kind = response_format.get("type")
    if kind in (None, "text"):
        return None
    if kind == "json_object":
        return {"type": "json_object"}
    if kind == "json_schema":
        schema = response_format.get("json_schema") or {}
        fmt = {"type": "json_schema", "name": schema.get("name") or "response",
               "schema": schema.get("schema") or {}}
        for name in ("description", "strict"):
            if schema.get(name) is not None:
                fmt[name] = schema[name]
        return fmt
    raise errors.ProviderBadRequest(f"response_format {kind!r} is not supported")


def responses_params(params: dict) -> dict:
    """Return the Responses body fields for the call's chat parameters; refuse what the
    Responses API cannot carry (stop sequences, logprobs, n > 1, ...)."""
    unknown = set(params) - _TRANSLATED_PARAMS - _DROPPED_PARAMS - _OWNED_PARAMS
    unknown = {name for name in unknown if params[name] is not None}
    if unknown:
        raise errors.ProviderBadRequest(
            f"unsupported by the Responses API: {', '.join(sorted(unknown))}")
    if params.get("n") not in (None, 1):
        raise errors.ProviderBadRequest("n > 1 is not supported by the Responses API")
    body: dict = {name: params[name] for name in _PASSED_AS_IS if params.get(name) is not None}
    limit = params.get("max_completion_tokens") or params.get("max_tokens")
    if limit is not None:
        body["max_output_tokens"] = limit
    if params.get("tools"):
        body["tools"] = [_tool(tool) for tool in params["tools"]]
        if params.get("tool_choice") is not None:
            body["tool_choice"] = _tool_choice(params["tool_choice"])
    if params.get("metadata"):
        body["metadata"] = params["metadata"]
    if params.get("reasoning_effort"):
        body["reasoning"] = {"effort": params["reasoning_effort"]}
    text: dict = {}
    if isinstance(params.get("response_format"), dict):
        fmt = _text_format(params["response_format"])
        if fmt is not None:
            text["format"] = fmt
    if params.get("verbosity"):
        text["verbosity"] = params["verbosity"]
    if text:
        body["text"] = text
    return body


# --- Responses → Chat ------------------------------------------------------------------------
def usage_from_responses(raw: object) -> Usage | None:
    """Return the normalized `Usage` of a Responses `usage` object (None when absent)."""
    if not isinstance(raw, dict):
        return None
    prompt, completion = raw.get("input_tokens"), raw.get("output_tokens")
    if not isinstance(prompt, int | float) or not isinstance(completion, int | float):
        return None
    # Passed on as sent: the gateway checks every count before billing it.
    return Usage(prompt_tokens=prompt, completion_tokens=completion,
                 cached_tokens=_detail(raw.get("input_tokens_details"), "cached_tokens"),
                 reasoning_tokens=_detail(raw.get("output_tokens_details"), "reasoning_tokens"))


def _detail(details: object, name: str) -> int | float:
    value = details.get(name) if isinstance(details, dict) else None
    return value if isinstance(value, int | float) else 0


def error_from_responses(error: object, *, what: str) -> errors.ProviderError:
    """Return the typed error of a Responses `error` object (a failed response, an error
    event): its code says whether a retry or another model may help."""
    error = error if isinstance(error, dict) else {}
    code = str(error.get("code") or error.get("type") or "")
    message = f"{what}: {code}: {error.get('message', '')}"[:300]
    if code in ("rate_limit_exceeded", "rate_limit_error"):
        return errors.ProviderRateLimited(message, status=429)
    if code.startswith("invalid") or code in ("context_length_exceeded", "invalid_prompt"):
        return errors.ProviderBadRequest(message)
    return errors.ProviderServerError(message)  # server_error, vector_store_timeout, unknown


def _finish_reason(response: dict, *, called: bool) -> str:
    if response.get("status") == "incomplete":
        reason = (response.get("incomplete_details") or {}).get("reason")
        return INCOMPLETE_FINISH.get(reason, "length")
    return "tool_calls" if called else "stop"


def completion_from_responses(payload: dict) -> Completion:
    """Return the chat-shaped `Completion` of a Responses `response` object."""
    if payload.get("status") == "failed" or payload.get("error"):
        raise error_from_responses(payload.get("error"), what="response failed")
    output = payload["output"]
    if not isinstance(output, list):
        raise errors.ProviderMalformedResponse("response output is not a list")
    texts, refusals, tool_calls = [], [], []
    for item in output:
        if item.get("type") == "message":
            for part in item.get("content") or []:
                if part.get("type") == "output_text":
                    texts.append(part.get("text", ""))
                elif part.get("type") == "refusal":
                    refusals.append(part.get("refusal", ""))
        elif item.get("type") == "function_call":
            tool_calls.append({"id": item["call_id"], "type": "function",
                               "function": {"name": item["name"],
                                            "arguments": item.get("arguments") or ""}})
    text = "".join(texts)
    message: dict = {"role": "assistant", "content": text if text or not tool_calls else None}
    if tool_calls:
        message["tool_calls"] = tool_calls
    if refusals:
        message["refusal"] = "".join(refusals)
    return Completion(message=message, usage=usage_from_responses(payload.get("usage")),
                      finish_reason=_finish_reason(payload, called=bool(tool_calls)))


class ResponsesStreamDecoder(StreamDecoder):
    """Responses events → deltas; each `function_call` output item becomes one chat tool call
    (its id and name from `output_item.added`, its arguments from the argument deltas)."""

    def __init__(self) -> None:
        self.calls: dict[str, int] = {}  # function_call item id → chat tool-call index
        self.streamed: set[str] = set()  # items whose arguments came as deltas

    def feed(self, event: SSEEvent) -> list[Delta]:
        payload = load_json(event.data, what="stream event")
        kind = payload.get("type") or event.event
        if kind == "response.created":
            return [Delta(role="assistant")]
        if kind == "response.output_text.delta":
            return [Delta(content=payload["delta"])] if payload.get("delta") else []
        if kind == "response.output_item.added":
            item = payload.get("item") or {}
            if item.get("type") != "function_call":
                return []
            index = self.calls.setdefault(item.get("id") or str(payload.get("output_index")),
                                          len(self.calls))
            return [Delta(tool_calls=[{"index": index, "id": item.get("call_id", ""),
                                       "type": "function", "function": {
                                           "name": item.get("name", ""), "arguments": ""}}])]
        if kind in ("response.function_call_arguments.delta",
                    "response.function_call_arguments.done"):
            key = payload.get("item_id") or str(payload.get("output_index"))
            index = self.calls.get(key)
            if index is None:
                raise errors.ProviderMalformedResponse("function call arguments before the call")
            if kind.endswith(".delta"):
                self.streamed.add(key)
                arguments = payload.get("delta") or ""
            elif key in self.streamed:
                return []
            else:  # a server that sends the arguments whole, only when they are done
                arguments = payload.get("arguments") or ""
            return [Delta(tool_calls=[{"index": index, "function": {"arguments": arguments}}])
                    ] if arguments else []
        if kind in ("response.completed", "response.incomplete"):
            self.done = True
            response = payload.get("response") or {}
            return [Delta(finish_reason=_finish_reason(response, called=bool(self.calls)),
                          usage=usage_from_responses(response.get("usage")))]
        if kind == "response.failed":
            raise error_from_responses((payload.get("response") or {}).get("error"),
                                       what="response failed")
        if kind == "error":
            raise error_from_responses(payload.get("error") or payload, what="error event")
        return []  # in_progress, content parts, reasoning and the *.done echoes: nothing new


class OpenAIResponsesAdapter(OpenAIChatAdapter):
    """The Responses API over HTTP. Endpoint, key and profile options (`extra_body`,
    `extra_headers`) are the Chat Completions adapter's; the body and the answers differ."""

    provider = "openai_responses"

    def build_request(self, call: ProviderCall, *, stream: bool) -> HTTPRequest:
        options = check_options(call.options, RESPONSES_OPTIONS)
        spec, base_url, api_key = self.endpoint(call)
        instructions, items = responses_input(call.messages)
        body: dict = {"model": call.upstream_model, "input": items,
                      **responses_params(call.params), "store": False}
        least = int(options.get("min_output_tokens",
                                spec.adapter_options.get("min_output_tokens", 0)))
        if body.get("max_output_tokens") is not None and body["max_output_tokens"] < least:
            # Raising the limit would let the provider bill more than was reserved: refuse.
            raise errors.ProviderBadRequest(
                f"max_output_tokens {body['max_output_tokens']} is below {least}, the least "
                "the Responses API accepts")
        if instructions:
            body["instructions"] = instructions
        if stream:
            body["stream"] = True
        return openai_request(f"{base_url}/responses", body, api_key=api_key, options=options,
                              stream=stream)

    def stream_decoder(self, call: ProviderCall) -> StreamDecoder:
        return ResponsesStreamDecoder()

    def parse_completion(self, payload: dict) -> Completion:
        return completion_from_responses(payload)

    async def embed(self, call: ProviderCall) -> Embeddings:
        raise errors.ProviderNotConfigured(
            "the Responses API serves no embeddings (use an openai profile)")
