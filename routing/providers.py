"""The provider registry: one `ProviderSpec` per provider, read by every room that needs one.

A spec says everything the gateway knows of a provider: the name profiles use, its adapter (a
dotted path, resolved by llmops/providers/registry.py: routing never imports the providers), how
its prompts are counted, its names in the price catalog, its key and endpoint, and what its wire
format can do. docs/providers.md shows how to add one.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.utils.module_loading import import_string


@dataclass(frozen=True)
class ProviderSpec:
    """One provider, as routing, token estimation, price sync and the adapters see it."""

    name: str  #: the `ModelProfile.provider` value
    label: str  #: shown in the admin
    adapter: str  #: dotted path of its `llmops.providers.base.ProviderAdapter` class
    #: "openai" when the offline cl100k tokenizer counts as the provider does (the tighter
    #: ROUTING_TOKEN_MARGIN_OPENAI applies); any other family gets ROUTING_TOKEN_MARGIN
    tokenizer: str = "other"
    #: whose published rules bound its images and tool prompts: a family of
    #: `routing.media.IMAGE_RULES` ("anthropic" also adds its tool-use system prompt);
    #: "" for servers of unknown models, which get the dearest rule of all
    billing_rules: str = ""
    #: its `litellm_provider` values in the price catalog (empty: any entry may match)
    catalog_names: tuple[str, ...] = ()
    #: the setting holding its API key (read from the environment when no setting has the name)
    key_setting: str = ""
    base_url: str = ""  #: its public endpoint ("": every profile names its own `base_url`)
    needs_key: bool = True  #: False: callable without a key (self-hosted servers, simulated)
    streams: bool = True  #: its wire format streams
    tools: bool = True  #: its wire format carries tool definitions and calls
    images: bool = True  #: its wire format carries image parts
    chat: bool = True  #: it answers chat (False: an embeddings-only provider)
    #: it answers `/v1/embeddings` (its adapter implements `embed`)
    embeddings: bool = False
    #: defaults for its adapter, under any options a profile sets (e.g. `max_tokens_name`)
    adapter_options: Mapping[str, Any] = field(default_factory=dict, hash=False)


_OPENAI_CHAT = "llmops.providers.openai_chat"

#: The providers this gateway ships with. More come from LLMOPS_EXTRA_PROVIDERS.
PROVIDERS: tuple[ProviderSpec, ...] = (
    ProviderSpec(
        name="openai", label="OpenAI", adapter=f"{_OPENAI_CHAT}.OpenAIChatAdapter",
        tokenizer="openai", billing_rules="openai",
        catalog_names=("openai", "text-completion-openai"), key_setting="OPENAI_API_KEY",
        base_url="https://api.openai.com/v1",
        # Its reasoning models refuse the deprecated `max_tokens`; every chat model takes this.
        adapter_options={"max_tokens_name": "max_completion_tokens"}, embeddings=True),
    ProviderSpec(
        # The same account and key as `openai`, through the Responses API: requests go to
        # {base}/responses in that wire format (llmops/providers/openai_responses.py).
        name="openai_responses", label="OpenAI (Responses API)",
        adapter="llmops.providers.openai_responses.OpenAIResponsesAdapter",
        tokenizer="openai", billing_rules="openai", catalog_names=("openai",),
        key_setting="OPENAI_API_KEY", base_url="https://api.openai.com/v1",
        # OpenAI refuses a smaller max_output_tokens with a 400.
        adapter_options={"min_output_tokens": 16}),
    ProviderSpec(
        name="gemini", label="Google Gemini (OpenAI-compatible endpoint)",
        adapter=f"{_OPENAI_CHAT}.GeminiChatAdapter", billing_rules="gemini",
        catalog_names=("gemini", "vertex_ai-language-models"), key_setting="GEMINI_API_KEY",
        base_url="https://generativelanguage.googleapis.com/v1beta/openai", embeddings=True),
    ProviderSpec(
        name="anthropic", label="Anthropic",
        adapter="llmops.providers.anthropic_messages.AnthropicMessagesAdapter",
        billing_rules="anthropic", catalog_names=("anthropic",),
        key_setting="ANTHROPIC_API_KEY", base_url="https://api.anthropic.com/v1"),
    ProviderSpec(
        name="openai_compatible", label="OpenAI-compatible server (vLLM, Ollama, llama.cpp)",
        adapter=f"{_OPENAI_CHAT}.OpenAICompatibleChatAdapter", tokenizer="openai",
        needs_key=False, embeddings=True),
    ProviderSpec(
        name="simulated", label="Simulated (demo and benchmarks, no real model)",
        adapter="llmops.providers.simulated.SimulatedAdapter", needs_key=False, tools=False,
        images=False),
    ProviderSpec(
        name="local", label="Local embedding model (all-MiniLM-L6-v2, in this process)",
        adapter="llmops.providers.local_embeddings.LocalEmbeddingAdapter", needs_key=False,
        streams=False, tools=False, images=False, chat=False, embeddings=True),
)


@cache
def provider_registry() -> dict[str, ProviderSpec]:
    """Return every provider by name: the built-in ones, then LLMOPS_EXTRA_PROVIDERS (dotted
    paths to `ProviderSpec` objects; one with a built-in name replaces it)."""
    specs = {spec.name: spec for spec in PROVIDERS}
    for path in getattr(settings, "LLMOPS_EXTRA_PROVIDERS", ()):
        spec = import_string(path)
        if not isinstance(spec, ProviderSpec):
            raise TypeError(f"LLMOPS_EXTRA_PROVIDERS: {path} is not a ProviderSpec")
        specs[spec.name] = spec
    return specs


def provider_spec(name: str | None) -> ProviderSpec | None:
    """Return the registry entry called `name`, None when there is none."""
    return provider_registry().get(name) if name else None


def provider_choices() -> list[tuple[str, str]]:
    """Return (name, label) of every provider: `ModelProfile.provider`'s choices."""
    return [(spec.name, spec.label) for spec in provider_registry().values()]


@receiver(setting_changed)
def _reset_registry(*, setting: str, **kwargs) -> None:
    if setting == "LLMOPS_EXTRA_PROVIDERS":
        provider_registry.cache_clear()
