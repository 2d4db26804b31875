"""The Anthropic Messages wire format, translated to and from the gateway's OpenAI shape.

Requests: system messages fold into `system`, tool calls and results become tool_use/tool_result
blocks, consecutive same-role turns merge (Anthropic wants alternating turns), `max_tokens` is
always sent. Answers: content blocks and stream events become OpenAI-shaped messages and deltas.
"""

import json
from typing import Any

from llmops.providers import errors
from llmops.providers.base import (
    Completion,
    Delta,
    ProviderAdapter,
    ProviderCall,
    Usage,
    check_options,
    content_text,
)
from llmops.providers.http import HTTPAdapterMixin, HTTPRequest
from llmops.providers.sse import SSEEvent, StreamDecoder, load_json

ANTHROPIC_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096  # Anthropic requires max_tokens; OpenAI clients often omit it

OPTIONS = frozenset({
    "default_max_tokens",  # max_tokens when the client sends none
    "anthropic_version",   # the anthropic-version header
    "extra_headers",       # e.g. anthropic-beta
    "extra_body",          # merged into the request body (e.g. thinking)
})

#: OpenAI parameters without an Anthropic equivalent that only nudge sampling: dropped, so a
#: request written for an OpenAI model still runs here (e.g. after a fallback).
_DROPPED_PARAMS = frozenset({
    "presence_penalty", "frequency_penalty", "logit_bias", "seed", "service_tier", "store",
    "metadata", "reasoning_effort", "prompt_cache_key", "safety_identifier", "verbosity",
})
_KNOWN_PARAMS = frozenset({
    "temperature", "top_p", "max_tokens", "max_completion_tokens", "stop", "tools",
    "tool_choice", "parallel_tool_calls", "response_format", "user", "n", "logprobs",
    "top_logprobs", "model", "messages", "stream", "stream_options",
}) | _DROPPED_PARAMS

FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}

_JSON_ONLY = "Respond with a single valid JSON object and nothing else."


def usage_from_anthropic(raw: object) -> Usage | None:
    """Return the normalized `Usage` of an Anthropic `usage` object (None when absent).

    Anthropic reports `input_tokens` *excluding* cache reads and cache writes, so the prompt is
    the sum of the three. Cache reads become `cached_tokens` (priced at the profile's cached
    input price). Cache writes (`cache_creation_input_tokens`) are billed by Anthropic at 1.25x
    (5-minute cache) or 2x (1-hour cache) the input price; here they are plain prompt tokens at
    the input price, counted exactly once, which slightly under-prices requests that write the
    cache. A separate `cache_creation_tokens` in `Usage` would make that exact.
    """
    if not isinstance(raw, dict):
        return None
    fresh, output = raw.get("input_tokens"), raw.get("output_tokens")
    if not isinstance(fresh, int | float) or not isinstance(output, int | float):
        return None
    # Passed on as sent: the gateway checks every count before billing it.
    cache_read = raw.get("cache_read_input_tokens") or 0
    cache_write = raw.get("cache_creation_input_tokens") or 0
    if not isinstance(cache_read, int | float) or not isinstance(cache_write, int | float):
        return None
    return Usage(prompt_tokens=fresh + cache_read + cache_write, completion_tokens=output,
                 cached_tokens=cache_read)


# --- OpenAI → Anthropic ----------------------------------------------------------------------
def _image_block(part: dict) -> dict:
    url = part.get("image_url")
    url = url.get("url", "") if isinstance(url, dict) else str(url or "")
    if url.startswith("data:"):
        header, _, data = url.partition(",")
        media_type = header[len("data:"):].split(";")[0] or "image/png"
        return {"type": "image", "source": {"type": "base64", "media_type": media_type,
                                            "data": data}}
    return {"type": "image", "source": {"type": "url", "url": url}}


def _content_blocks(content: Any) -> list[dict]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    blocks = []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            if part.get("text"):
                blocks.append({"type": "text", "text": part["text"]})
        elif kind == "image_url":
            blocks.append(_image_block(part))
        else:
            raise errors.ProviderBadRequest(f"content part type {kind!r} is not supported here")
    return blocks


def _tool_use_block(tool_call: dict) -> dict:
    function = tool_call.get("function") or {}
    arguments = function.get("arguments") or "{}"
    try:
        tool_input = json.loads(arguments) if isinstance(arguments, str) else arguments
    except ValueError:
        raise errors.ProviderBadRequest("tool call arguments are not valid JSON") from None
    return {"type": "tool_use", "id": tool_call.get("id", ""), "name": function.get("name", ""),
            "input": tool_input if isinstance(tool_input, dict) else {"value": tool_input}}


def translate_messages(messages: list[dict]) -> tuple[str, list[dict]]:
    """Return (system, messages) in Anthropic shape for OpenAI-shaped `messages`."""
    system_parts: list[str] = []
    turns: list[dict] = []

    def add(role: str, blocks: list[dict]) -> None:
        if not blocks:
            return
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})

    for message in messages:
        role = message.get("role")
        if role in ("system", "developer"):
            text = content_text(message.get("content"))
            if text:
                system_parts.append(text)
        elif role == "user":
            add("user", _content_blocks(message.get("content")))
        elif role == "assistant":
            blocks = _content_blocks(message.get("content"))
            blocks += [_tool_use_block(tc) for tc in message.get("tool_calls") or []]
            add("assistant", blocks)
        elif role == "tool":
            add("user", [{"type": "tool_result", "tool_use_id": message.get("tool_call_id", ""),
                          "content": content_text(message.get("content"))}])
        else:
            raise errors.ProviderBadRequest(f"message role {role!r} is not supported here")
    for turn in turns:
        # Anthropic wants tool results before any text in a user turn.
        turn["content"].sort(key=lambda block: block["type"] != "tool_result")
    return "\n\n".join(system_parts), turns


def _tool_choice(choice: Any, parallel: bool | None) -> dict | None:
    if choice is None and parallel is None:
        return None
    if choice is None or choice == "auto":
        result: dict = {"type": "auto"}
    elif choice == "none":
        result = {"type": "none"}
    elif choice == "required":
        result = {"type": "any"}
    elif isinstance(choice, dict) and (choice.get("function") or {}).get("name"):
        result = {"type": "tool", "name": choice["function"]["name"]}
    else:
        raise errors.ProviderBadRequest("tool_choice is not understood")
    if parallel is False and result["type"] != "none":
        result["disable_parallel_tool_use"] = True
    return result


def translate_params(params: dict, *, default_max_tokens: int) -> tuple[dict, str]:
    """Return (Anthropic body fields, extra system text) for OpenAI-named `params`."""
    unknown = set(params) - _KNOWN_PARAMS
    if unknown:
        raise errors.ProviderBadRequest(f"unsupported parameter(s): {', '.join(sorted(unknown))}")
    if params.get("n") not in (None, 1):
        raise errors.ProviderBadRequest("n > 1 is not supported by Anthropic")
    if params.get("logprobs") or params.get("top_logprobs"):
        raise errors.ProviderBadRequest("logprobs are not supported by Anthropic")
    body: dict = {
        "max_tokens": params.get("max_completion_tokens") or params.get("max_tokens")
        or default_max_tokens,
    }
    if params.get("temperature") is not None:
        # OpenAI's range is 0-2, Anthropic's 0-1: clamp so a fallback from an OpenAI model
        # does not turn a valid request into a 400.
        body["temperature"] = min(float(params["temperature"]), 1.0)
    if params.get("top_p") is not None:
        body["top_p"] = params["top_p"]
    stop = params.get("stop")
    if stop:
        body["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    if params.get("tools"):
        body["tools"] = [_tool(tool) for tool in params["tools"]]
    tool_choice = _tool_choice(params.get("tool_choice"), params.get("parallel_tool_calls"))
    if tool_choice and body.get("tools"):
        body["tool_choice"] = tool_choice
    if params.get("user"):
        body["metadata"] = {"user_id": str(params["user"])}
    extra_system = ""
    response_format = params.get("response_format") or {}
    kind = response_format.get("type") if isinstance(response_format, dict) else None
    if kind == "json_object":
        extra_system = _JSON_ONLY  # no JSON mode in the Messages API: ask for it instead
    elif kind == "json_schema":
        schema = (response_format.get("json_schema") or {}).get("schema") or {}
        extra_system = f"{_JSON_ONLY} It must match this JSON schema: {json.dumps(schema)}"
    elif kind not in (None, "text"):
        raise errors.ProviderBadRequest(f"response_format {kind!r} is not supported")
    return body, extra_system


def _tool(tool: dict) -> dict:
    if tool.get("type", "function") != "function":
        raise errors.ProviderBadRequest(f"tool type {tool.get('type')!r} is not supported")
    function = tool.get("function") or {}
    result = {"name": function.get("name", ""),
              "input_schema": function.get("parameters") or {"type": "object", "properties": {}}}
    if function.get("description"):
        result["description"] = function["description"]
    return result


# --- Anthropic → OpenAI ----------------------------------------------------------------------
def _error_from_event(payload: dict) -> errors.ProviderError:
    error = payload.get("error") or {}
    kind = error.get("type", "") if isinstance(error, dict) else ""
    message = f"error event in stream: {kind}: {error.get('message', '')}"[:300]
    if kind == "rate_limit_error":
        return errors.ProviderRateLimited(message, status=429)
    if kind in ("authentication_error", "permission_error"):
        return errors.ProviderAuthError(message)
    if kind in ("invalid_request_error", "not_found_error", "request_too_large"):
        return errors.ProviderBadRequest(message)
    return errors.ProviderServerError(message)  # overloaded_error, api_error, unknown


class AnthropicStreamDecoder(StreamDecoder):
    """Messages stream events → deltas, tool_use blocks → OpenAI tool-call fragments."""

    def __init__(self) -> None:
        self.usage_fields: dict = {}
        self.stop_reason: str | None = None
        self.tool_index: dict[int, int] = {}  # content block index → OpenAI tool-call index

    def feed(self, event: SSEEvent) -> list[Delta]:
        payload = load_json(event.data, what="stream event")
        kind = payload.get("type") or event.event
        if kind == "message_start":
            message = payload.get("message") or {}
            self.usage_fields.update(message.get("usage") or {})
            return [Delta(role="assistant")]
        if kind == "content_block_start":
            block = payload.get("content_block") or {}
            if block.get("type") == "tool_use":
                index = self.tool_index.setdefault(payload.get("index", 0), len(self.tool_index))
                return [Delta(tool_calls=[{
                    "index": index, "id": block.get("id", ""), "type": "function",
                    "function": {"name": block.get("name", ""), "arguments": ""},
                }])]
            if block.get("type") == "text" and block.get("text"):
                return [Delta(content=block["text"])]
            return []
        if kind == "content_block_delta":
            delta = payload.get("delta") or {}
            if delta.get("type") == "text_delta":
                return [Delta(content=delta.get("text", ""))] if delta.get("text") else []
            if delta.get("type") == "input_json_delta":
                index = self.tool_index.get(payload.get("index", 0))
                if index is None:
                    raise errors.ProviderMalformedResponse("input_json_delta outside a tool_use")
                return [Delta(tool_calls=[{"index": index, "function": {
                    "arguments": delta.get("partial_json", "")}}])]
            return []  # thinking_delta, signature_delta, citations: not relayed
        if kind == "message_delta":
            self.stop_reason = (payload.get("delta") or {}).get("stop_reason") or self.stop_reason
            # message_delta usage is cumulative and may repeat the input counts: later wins.
            self.usage_fields.update({k: v for k, v in (payload.get("usage") or {}).items()
                                      if v is not None})
            return []
        if kind == "message_stop":
            self.done = True
            return [Delta(finish_reason=FINISH_REASONS.get(self.stop_reason or "", "stop"),
                          usage=usage_from_anthropic(self.usage_fields))]
        if kind == "error":
            raise _error_from_event(payload)
        return []  # ping, content_block_stop, and event types added later


def completion_from_anthropic(payload: dict) -> Completion:
    """Return the OpenAI-shaped `Completion` of an Anthropic Messages answer."""
    if payload.get("type") == "error":
        raise _error_from_event(payload)
    blocks = payload["content"]
    if not isinstance(blocks, list):
        raise errors.ProviderMalformedResponse("answer content is not a list")
    text = "".join(b.get("text", "") for b in blocks if b.get("type") == "text")
    tool_calls = [
        {"id": b["id"], "type": "function",
         "function": {"name": b["name"], "arguments": json.dumps(b.get("input") or {})}}
        for b in blocks if b.get("type") == "tool_use"
    ]
    message: dict = {"role": "assistant", "content": text if text or not tool_calls else None}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return Completion(message=message,
                      finish_reason=FINISH_REASONS.get(payload.get("stop_reason") or "", "stop"),
                      usage=usage_from_anthropic(payload.get("usage")))


class AnthropicMessagesAdapter(HTTPAdapterMixin, ProviderAdapter):
    """Anthropic Messages API (`POST {base_url}/messages`)."""

    provider = "anthropic"

    def build_request(self, call: ProviderCall, *, stream: bool) -> HTTPRequest:
        options = check_options(call.options, OPTIONS)
        # Only the public endpoint gets ANTHROPIC_API_KEY implicitly; with a custom base_url
        # (a proxy) the key is the profile's to give, and the server decides without one.
        api_key = call.api_key or ("" if call.base_url else self.api_key_for())
        if not api_key and not call.base_url:
            raise errors.ProviderNotConfigured(
                f"anthropic has no API key ({self.spec.key_setting})")
        system, messages = translate_messages(call.messages)
        params, extra_system = translate_params(
            call.params,
            default_max_tokens=int(options.get("default_max_tokens") or DEFAULT_MAX_TOKENS))
        system = "\n\n".join(part for part in (system, extra_system) if part)
        body: dict = {"model": call.upstream_model, "messages": messages, **params}
        if system:
            body["system"] = system
        if stream:
            body["stream"] = True
        body.update(options.get("extra_body") or {})
        headers = {
            "Content-Type": "application/json",
            "Accept": "text/event-stream" if stream else "application/json",
            "anthropic-version": options.get("anthropic_version") or ANTHROPIC_VERSION,
            **(options.get("extra_headers") or {}),
        }
        if api_key:
            headers["x-api-key"] = api_key
        base_url = (call.base_url or self.spec.base_url).rstrip("/")
        return HTTPRequest(url=f"{base_url}/messages", headers=headers, body=body, secret=api_key)

    def stream_decoder(self, call: ProviderCall) -> StreamDecoder:
        return AnthropicStreamDecoder()

    def parse_completion(self, payload: dict) -> Completion:
        return completion_from_anthropic(payload)
