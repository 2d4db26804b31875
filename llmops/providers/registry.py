"""Resolve a provider name to its adapter instance (settings.LLMOPS_PROVIDER_ADAPTERS)."""

from functools import cache

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.utils.module_loading import import_string

from llmops.providers.base import ProviderAdapter


@cache
def get_adapter(provider: str) -> ProviderAdapter:
    """Return the (shared) adapter for `provider`; KeyError when none is configured."""
    path = settings.LLMOPS_PROVIDER_ADAPTERS[provider]
    return import_string(path)()


def profile_available(profile) -> bool:
    """Return whether a ModelProfile can be called: its provider needs no key, or the key (the
    profile's own `api_key_env`, else the provider's setting) is set. Routing asks this through
    ROUTING_PROFILE_AVAILABLE."""
    adapter = get_adapter(profile.provider)
    return not adapter.needs_key or bool(adapter.api_key_for(profile.api_key_env)) or (
        profile.provider == "openai_compatible"
    )


@receiver(setting_changed)
def _reset_adapters(*, setting: str, **kwargs) -> None:
    if setting == "LLMOPS_PROVIDER_ADAPTERS":
        get_adapter.cache_clear()
