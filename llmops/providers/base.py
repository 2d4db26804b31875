"""The provider contract: what the gateway sends an adapter and what it gets back.

Messages and parameters arrive in OpenAI Chat Completions shape; each adapter translates to and
from its own wire format and normalizes usage into `Usage`.
"""

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from django.conf import settings


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


class ProviderAdapter(ABC):
    """Base for adapters. Subclasses implement `stream`; `complete` may be overridden."""

    #: the provider key setting read when a profile names no `api_key_env`
    key_setting: str = ""
    default_base_url: str = ""
    needs_key: bool = True
    can_stream: bool = True

    def api_key_for(self, api_key_env: str = "") -> str:
        """Return the configured key for this provider ('' when none)."""
        import os

        if api_key_env:
            return os.environ.get(api_key_env, "")
        return getattr(settings, self.key_setting, "") if self.key_setting else ""

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
