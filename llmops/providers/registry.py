"""Resolve a provider name to its adapter instance, from the registry (routing/providers.py)."""

from functools import cache

from django.core.signals import setting_changed
from django.dispatch import receiver
from django.utils.module_loading import import_string

from llmops.providers.base import ProviderAdapter
from routing.providers import provider_spec


@cache
def get_adapter(provider: str) -> ProviderAdapter:
    """Return the (shared) adapter for `provider`; KeyError when the registry has no such
    provider."""
    spec = provider_spec(provider)
    if spec is None:
        raise KeyError(provider)
    return import_string(spec.adapter)(spec)


def profile_available(profile) -> bool:
    """Return whether a ModelProfile can be called: its provider needs no key, or the key (the
    profile's own `api_key_env`, else the provider's setting) is set. Routing asks this through
    ROUTING_PROFILE_AVAILABLE. A provider the registry lacks cannot be called."""
    try:
        adapter = get_adapter(profile.provider)
    except KeyError:
        return False
    return not adapter.needs_key or bool(adapter.api_key_for(profile.api_key_env))


@receiver(setting_changed)
def _reset_adapters(*, setting: str, **kwargs) -> None:
    if setting == "LLMOPS_EXTRA_PROVIDERS":
        get_adapter.cache_clear()
