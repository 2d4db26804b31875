"""The provider contract: what the gateway sends an adapter and what it gets back.

Messages and parameters arrive in OpenAI Chat Completions shape; each adapter translates to and
from its own wire format and normalizes usage into `Usage`.
"""

import os
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from django.conf import settings

from llmops.providers.errors import ProviderNotConfigured
from routing.providers import ProviderSpec, provider_spec


@dataclass
class Usage:
    """Token usage as reported by a provider (cached ⊂ prompt, reasoning ⊂ completion)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass
class ProviderCall:
    """One upstream request, already resolved to a profile."""

    upstream_model: str
    messages: list[dict]
    provider: str = ""  # the profile's provider name (openai, gemini, ...): picks default URLs
    params: dict = field(default_factory=dict)  # OpenAI names: temperature, max_tokens, stop, ...
    base_url: str = ""
    api_key: str = ""
    options: dict = field(default_factory=dict)  # the profile's adapter options
    request_id: str = ""


@dataclass
class Delta:
    """One piece of a streamed answer. The last one carries `finish_reason` and/or `usage`."""

    content: str = ""
    role: str | None = None
    tool_calls: list[dict] | None = None
    finish_reason: str | None = None
    usage: Usage | None = None


@dataclass
class Completion:
    """A whole answer. `usage` is None when the provider did not report one."""

    message: dict
    finish_reason: str = "stop"
    usage: Usage | None = None

    def deltas(self) -> list[Delta]:
        """Return this answer as the deltas a stream of it would have yielded."""
        message = self.message
        tool_calls = message.get("tool_calls")
        return [Delta(role=message.get("role") or "assistant",
                      content=message.get("content") or "",
                      tool_calls=[{"index": i, **c} for i, c in enumerate(tool_calls)]
                      if tool_calls else None),
                Delta(finish_reason=self.finish_reason, usage=self.usage)]


@dataclass
class Embeddings:
    """The vectors of an embeddings call, one per input in order (float32), and the usage the
    provider reported (None when it reported none)."""

    vectors: list
    usage: Usage | None = None


class ProviderAdapter(ABC):
    """Base for adapters. Subclasses implement `stream`; `complete` may be overridden.

    An adapter serves one entry of the provider registry (`spec`: its key, endpoint and
    capabilities); llmops/providers/registry.py builds it with that entry.
    """

    #: the registry entry served when the adapter is built without one (tests, scripts)
    provider: str = ""

    def __init__(self, spec: ProviderSpec | None = None) -> None:
        self.spec = spec or provider_spec(self.provider) or ProviderSpec(
            name=self.provider, label=self.provider,
            adapter=f"{type(self).__module__}.{type(self).__qualname__}")

    @property
    def needs_key(self) -> bool:
        return self.spec.needs_key

    def api_key_for(self, api_key_env: str = "") -> str:
        """Return the key to use: the profile's own variable `api_key_env` when it names one,
        else this provider's key ('' when none)."""
        if api_key_env:
            return os.environ.get(api_key_env, "")
        return provider_key(self.spec)

    # --- Methods that child classes must implement ---------------------------------------
    @abstractmethod
    def stream(self, call: ProviderCall) -> AsyncIterator[Delta]:
        """Yield the answer as `Delta`s; raise a `ProviderError` on failure."""
        raise NotImplementedError("subclasses of ProviderAdapter must provide stream()")

    # --- Optional ------------------------------------------------------------------------
    async def complete(self, call: ProviderCall) -> Completion:
        """Return the whole answer. Default: gather `stream()`."""
        parts: list[str] = []
        tool_calls: list[dict] = []
        finish_reason = "stop"
        usage = None
        async for delta in self.stream(call):
            parts.append(delta.content)
            if delta.tool_calls:
                tool_calls.extend(delta.tool_calls)
            if delta.finish_reason:
                finish_reason = delta.finish_reason
            if delta.usage is not None:
                usage = delta.usage
        message: dict = {"role": "assistant", "content": "".join(parts)}
        if tool_calls:
            message["tool_calls"] = tool_calls
        return Completion(message=message, finish_reason=finish_reason, usage=usage)

    async def embed(self, call: ProviderCall) -> Embeddings:
        """Return the embeddings of `call.params["input"]` (a list of strings or of token-id
        lists; `dimensions` and `user` when set); raise a `ProviderError` on failure. Only
        adapters of providers whose registry entry says `embeddings` implement it."""
        raise ProviderNotConfigured(f"provider {self.spec.name} does not serve embeddings")


def provider_key(spec: ProviderSpec) -> str:
    """Return `spec`'s configured API key: the setting named by its `key_setting`, else the
    environment variable of that name ('' when neither is set)."""
    name = spec.key_setting
    if not name:
        return ""
    if hasattr(settings, name):  # OPENAI_API_KEY, ...: settings win, so tests can override
        return getattr(settings, name) or ""
    return os.environ.get(name, "")


def content_text(content: object) -> str:
    """Return the text of a chat message's content (a string, or the text of its parts)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join(p.get("text", "") for p in content if isinstance(p, dict)
                   and p.get("type", "text") == "text")


def check_options(options: dict | None, allowed: frozenset[str]) -> dict:
    """Return `options`; raise `ProviderNotConfigured` naming any option the adapter lacks."""
    options = options or {}
    unknown = set(options) - allowed
    if unknown:
        # A profile misconfiguration, not the client's fault: the next fallback model may serve.
        raise ProviderNotConfigured(
            f"unknown adapter option(s): {', '.join(sorted(unknown))}")
    return options
