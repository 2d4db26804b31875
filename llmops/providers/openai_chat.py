"""The OpenAI Chat Completions wire format: OpenAI, Gemini (compatible endpoint), vLLM, Ollama.

Messages and parameters are already in this shape, so the request is mostly a pass-through of
known parameters; the work is in reading the stream (usage arrives in a last chunk with no
choices when `stream_options.include_usage` is asked for) and normalizing usage in one place.
"""

import base64
import logging

import numpy as np

from llmops.providers import errors
from llmops.providers.base import (
    Completion,
    Delta,
    Embeddings,
    ProviderAdapter,
    ProviderCall,
    Usage,
    check_options,
    provider_key,
)
from llmops.providers.http import HTTPAdapterMixin, HTTPRequest, with_request_id
from llmops.providers.sse import SSEEvent, StreamDecoder, load_json
from routing.providers import ProviderSpec, provider_spec

logger = logging.getLogger(__name__)

#: Chat Completions parameters we forward unchanged. Anything else is refused before the call:
#: a typo'd option should be a clear 400 from us, not a silent no-op or a confusing upstream 400.
PASSTHROUGH_PARAMS = frozenset({
    "temperature", "top_p", "max_tokens", "max_completion_tokens", "stop", "tools",
    "tool_choice", "parallel_tool_calls", "response_format", "seed", "user", "presence_penalty",
    "frequency_penalty", "logit_bias", "logprobs", "top_logprobs", "n", "reasoning_effort",
    "service_tier", "metadata", "store", "modalities", "prediction", "audio", "verbosity",
    "web_search_options", "prompt_cache_key", "safety_identifier",
})
#: set by the adapter itself; ignored if the gateway passes them along
_OWNED_PARAMS = frozenset({"model", "messages", "stream", "stream_options"})

#: adapter options a profile may set (ModelProfile.options)
OPTIONS = frozenset({
    "extra_body",     # dict merged into the request body (vLLM's top_k, Ollama's options, ...)
    "extra_headers",  # dict of extra request headers (e.g. OpenAI-Organization)
    "stream_usage",   # False for servers that reject stream_options (usage is then estimated)
})


def usage_from_openai(raw: object) -> Usage | None:
    """Return the normalized `Usage` of an OpenAI `usage` object (None when absent or unusable)."""
    if not isinstance(raw, dict):
        return None
    prompt, completion = raw.get("prompt_tokens"), raw.get("completion_tokens")
    if not isinstance(prompt, int | float) or not isinstance(completion, int | float):
        # Some compatible servers send `usage: {}` or nulls; the gateway counts instead.
        logger.warning("provider usage without token counts: %s", sorted(raw))
        return None
    prompt_details = raw.get("prompt_tokens_details")
    completion_details = raw.get("completion_tokens_details")
    # Passed on as sent: the gateway checks every count before billing it
    # (llmops/gateway/usage.py), so a non-integer or negative one is caught there.
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        cached_tokens=_detail(prompt_details, "cached_tokens"),
        reasoning_tokens=_detail(completion_details, "reasoning_tokens"),
    )


def _detail(details: object, name: str) -> int | float:
    value = details.get(name) if isinstance(details, dict) else None
    return value if isinstance(value, int | float) else 0


def merge_tool_call_deltas(fragments: list[dict]) -> list[dict]:
    """Return whole tool calls from streamed fragments (joined by `index`, arguments appended)."""
    calls: dict[int, dict] = {}
    for fragment in fragments:
        index = fragment.get("index", len(calls))
        call = calls.setdefault(index, {"id": "", "type": "function",
                                        "function": {"name": "", "arguments": ""}})
        if fragment.get("id"):
            call["id"] = fragment["id"]
        if fragment.get("type"):
            call["type"] = fragment["type"]
        function = fragment.get("function") or {}
        if function.get("name"):
            call["function"]["name"] = function["name"]
        call["function"]["arguments"] += function.get("arguments") or ""
    return [calls[index] for index in sorted(calls)]


class OpenAIStreamDecoder(StreamDecoder):
    """Chunks → deltas. finish_reason and usage are held and sent together in the last delta."""

    def __init__(self) -> None:
        self.finish_reason: str | None = None
        self.usage: Usage | None = None

    def feed(self, event: SSEEvent) -> list[Delta]:
        if event.data.strip() == "[DONE]":
            self.done = True
            return [self._closing()]
        chunk = load_json(event.data, what="stream chunk")
        if "error" in chunk:  # vLLM and others report mid-stream failures as a data event
            detail = chunk["error"]
            message = detail.get("message") if isinstance(detail, dict) else str(detail)
            raise errors.ProviderServerError(f"error event in stream: {message}"[:300])
        if chunk.get("usage") is not None:
            self.usage = usage_from_openai(chunk["usage"])
        choices = chunk.get("choices")
        if not isinstance(choices, list):
            raise errors.ProviderMalformedResponse("stream chunk has no choices list")
        deltas = []
        for choice in choices:
            if choice.get("index", 0) != 0:  # n > 1 is refused before the call
                continue
            raw = choice.get("delta") or {}
            delta = Delta(content=raw.get("content") or "", role=raw.get("role"),
                          tool_calls=raw.get("tool_calls") or None)
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
            if delta.content or delta.role or delta.tool_calls:
                deltas.append(delta)
        return deltas

    def finish(self) -> list[Delta]:
        # Some compatible servers (older llama.cpp) close without "[DONE]"; once a finish_reason
        # arrived the answer is complete. Without one the stream was cut: raise.
        if self.done:
            return []
        if self.finish_reason is None:
            raise errors.StreamInterrupted("the stream ended before a finish_reason or [DONE]")
        self.done = True
        return [self._closing()]

    def _closing(self) -> Delta:
        return Delta(finish_reason=self.finish_reason or "stop", usage=self.usage)


class OpenAIChatAdapter(HTTPAdapterMixin, ProviderAdapter):
    """Chat Completions over HTTP, for every provider of this wire format. Endpoint, key and
    `max_tokens_name` follow the call's provider in the registry, else this adapter's."""

    provider = "openai"

    def spec_for(self, call: ProviderCall) -> ProviderSpec:
        """Return the registry entry whose endpoint and key rules apply to `call`."""
        return provider_spec(call.provider) or self.spec

    def key_for(self, call: ProviderCall, spec: ProviderSpec) -> str:
        """Return the key to send for `call`: never one that belongs to another provider."""
        key = call.api_key
        own = self.spec.key_setting
        if key and own and spec.key_setting != own and key == provider_key(self.spec):
            # The gateway resolved the key through this adapter's own entry (OPENAI_API_KEY)
            # while the call is for gemini / a self-hosted server: sending it there would leak
            # our OpenAI key. Use the call's own provider key instead ('' for self-hosted).
            key = provider_key(spec)
        if not key and not call.base_url:
            # Only the provider's public endpoint gets the provider key implicitly; a custom
            # base_url receives a key only when the profile asked for one.
            key = provider_key(spec)
        return key

    def endpoint(self, call: ProviderCall) -> tuple[ProviderSpec, str, str]:
        """Return (registry entry, base URL, API key) for `call`; raise ProviderNotConfigured
        when it has no base URL, or no key where its provider needs one."""
        spec = self.spec_for(call)
        base_url = (call.base_url or spec.base_url).rstrip("/")
        if not base_url:
            raise errors.ProviderNotConfigured("this OpenAI-compatible profile has no base_url")
        api_key = self.key_for(call, spec)
        if spec.needs_key and not api_key and not call.base_url:
            # With a custom base_url (a proxy, a private deployment) the server decides.
            raise errors.ProviderNotConfigured(
                f"{self.label_for(call)} has no API key ({spec.key_setting} is empty)")
        return spec, base_url, api_key

    def build_request(self, call: ProviderCall, *, stream: bool) -> HTTPRequest:
        options = check_options(call.options, OPTIONS)
        spec, base_url, api_key = self.endpoint(call)
        body = {"model": call.upstream_model, "messages": call.messages,
                **chat_params(call.params)}
        newer, older = body.pop("max_completion_tokens", None), body.pop("max_tokens", None)
        limit = newer if newer is not None else older
        if limit is not None:
            # OpenAI's reasoning models refuse the deprecated `max_tokens`; compatible servers
            # (older vLLM, Ollama) may know only `max_tokens`: the registry entry says which.
            body[spec.adapter_options.get("max_tokens_name", "max_tokens")] = limit
        if stream:
            body["stream"] = True
            if options.get("stream_usage", True):
                body["stream_options"] = {"include_usage": True}
        return openai_request(f"{base_url}/chat/completions", body, api_key=api_key,
                              options=options, stream=stream)

    def stream_decoder(self, call: ProviderCall) -> StreamDecoder:
        return OpenAIStreamDecoder()

    def parse_completion(self, payload: dict) -> Completion:
        if "choices" not in payload:
            raise errors.ProviderMalformedResponse("answer has no choices")
        choice = payload["choices"][0]
        raw = choice["message"]
        if not isinstance(raw, dict):
            raise errors.ProviderMalformedResponse("answer message is not an object")
        message: dict = {"role": raw.get("role") or "assistant", "content": raw.get("content")}
        if raw.get("tool_calls"):
            message["tool_calls"] = raw["tool_calls"]
        if raw.get("refusal"):
            message["refusal"] = raw["refusal"]
        if message["content"] is None and not message.get("tool_calls"):
            message["content"] = ""
        return Completion(message=message, finish_reason=choice.get("finish_reason") or "stop",
                          usage=usage_from_openai(payload.get("usage")))


    # --- Embeddings: POST {base}/embeddings ---------------------------------------------
    def build_embeddings_request(self, call: ProviderCall) -> HTTPRequest:
        """Return the `/embeddings` request for `call` (input, dimensions, user; floats back:
        every compatible server speaks them, not all of them base64)."""
        options = check_options(call.options, OPTIONS)
        _, base_url, api_key = self.endpoint(call)
        body = {"model": call.upstream_model, "input": call.params["input"],
                "encoding_format": "float"}
        for name in EMBEDDING_PARAMS:
            if call.params.get(name) is not None:
                body[name] = call.params[name]
        return openai_request(f"{base_url}/embeddings", body, api_key=api_key,
                              options=options, stream=False)

    async def embed(self, call: ProviderCall) -> Embeddings:
        """Return the embeddings of `call.params["input"]`, in input order."""
        label = self.label_for(call)
        request = with_request_id(self.build_embeddings_request(call), call)
        payload = load_json(await self.post_json(request, label), what=f"{label} embeddings")
        try:
            return parse_embeddings(payload, count=len(call.params["input"]))
        except errors.ProviderError:
            raise
        except (KeyError, IndexError, TypeError, AttributeError, ValueError) as exc:
            raise errors.ProviderMalformedResponse(
                f"{label} embeddings are missing a field ({type(exc).__name__})") from None


#: Embeddings parameters forwarded when set (the gateway validated them).
EMBEDDING_PARAMS = ("dimensions", "user")


def parse_embeddings(payload: dict, *, count: int) -> Embeddings:
    """Return the `count` vectors of an OpenAI embeddings body (float lists or base64
    little-endian float32), ordered by their `index`; raise ProviderMalformedResponse when
    it holds another number of them or vectors of different lengths."""
    data = payload["data"]
    if not isinstance(data, list) or len(data) != count:
        raise errors.ProviderMalformedResponse(
            f"embeddings answer holds {len(data) if isinstance(data, list) else 'no'} vectors "
            f"for {count} inputs")
    by_index = {}
    for position, item in enumerate(data):
        raw = item["embedding"]
        if isinstance(raw, str):
            vector = np.frombuffer(base64.b64decode(raw, validate=True), dtype="<f4")
        else:
            vector = np.asarray(raw, dtype=np.float32)
        if vector.ndim != 1 or not vector.size or not np.isfinite(vector).all():
            raise errors.ProviderMalformedResponse("an embedding is not a finite vector")
        by_index[item.get("index", position)] = vector.astype(np.float32, copy=False)
    if sorted(by_index) != list(range(count)):
        raise errors.ProviderMalformedResponse("embeddings answer indexes do not match inputs")
    if len({v.size for v in by_index.values()}) > 1:
        raise errors.ProviderMalformedResponse("embeddings answer vectors differ in length")
    raw_usage = payload.get("usage")
    usage = None
    if isinstance(raw_usage, dict) and isinstance(raw_usage.get("prompt_tokens"), int | float):
        usage = Usage(prompt_tokens=raw_usage["prompt_tokens"])
    return Embeddings(vectors=[by_index[i] for i in range(count)], usage=usage)


class GeminiChatAdapter(OpenAIChatAdapter):
    """Gemini through its OpenAI-compatible endpoint."""

    provider = "gemini"


class OpenAICompatibleChatAdapter(OpenAIChatAdapter):
    """A self-hosted OpenAI-compatible server (vLLM, Ollama, llama.cpp): base_url required."""

    provider = "openai_compatible"


def openai_request(url: str, body: dict, *, api_key: str, options: dict,
                   stream: bool) -> HTTPRequest:
    """Return the request posting `body` to `url` as OpenAI's endpoints take it: the profile's
    `extra_body` merged in, its `extra_headers` added, the key as a Bearer token."""
    body.update(options.get("extra_body") or {})
    headers = {"Content-Type": "application/json", "Accept": "application/json",
               **(options.get("extra_headers") or {})}
    if stream:
        headers["Accept"] = "text/event-stream"
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    return HTTPRequest(url=url, headers=headers, body=body, secret=api_key)


def chat_params(params: dict) -> dict:
    """Return the Chat Completions parameters to forward; refuse unknown or unsupported ones."""
    unknown = set(params) - PASSTHROUGH_PARAMS - _OWNED_PARAMS
    if unknown:
        raise errors.ProviderBadRequest(f"unsupported parameter(s): {', '.join(sorted(unknown))}")
    if params.get("n") not in (None, 1):
        # Delta carries one choice; several would interleave into one answer.
        raise errors.ProviderBadRequest("n > 1 is not supported")
    return {k: v for k, v in params.items() if k in PASSTHROUGH_PARAMS and v is not None}

