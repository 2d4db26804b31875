"""What routing asks of other rooms, through callables the project names in settings, so routing
imports neither the providers nor budgets (docs/architecture.md, "Rooms").

ROUTING_PROFILE_AVAILABLE: `f(profile) -> bool`, whether the gateway holds what it needs to call
the profile (its provider's key); unset: every profile is available. Why a profile is not, for
the caller, comes from the provider registry (`profile_unavailable`).
ROUTING_BUDGET_REMAINING: `f(*, principal) -> Decimal | None`, the caller's remaining budget in
USD; unset: None (unlimited).
"""

from collections.abc import Callable
from decimal import Decimal
from functools import cache
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.utils.module_loading import import_string

from routing.providers import provider_spec

_HOOKS = ("ROUTING_PROFILE_AVAILABLE", "ROUTING_BUDGET_REMAINING")


@cache
def _hook(name: str) -> Callable | None:
    path = getattr(settings, name, "")
    return import_string(path) if path else None


def profile_available(profile: Any) -> bool:
    """Return whether the gateway can call `profile` (ROUTING_PROFILE_AVAILABLE)."""
    check = _hook("ROUTING_PROFILE_AVAILABLE")
    return True if check is None else bool(check(profile))


def profile_unavailable(profile: Any) -> str:
    """Return why the gateway cannot call `profile` now, as a phrase for the caller ("OPENAI_API_KEY
    is not set"), or '' when it can: the variable holding its key when the registry says the
    provider needs one (the profile's own `api_key_env` first)."""
    if profile_available(profile):
        return ""
    spec = provider_spec(profile.provider)
    if spec is None:
        return f"its provider '{profile.provider}' is not registered"
    variable = profile.api_key_env or spec.key_setting
    if spec.needs_key and variable:
        return f"{variable} is not set"
    return f"its provider '{profile.provider}' is not configured"


def budget_remaining(*, principal: Any) -> Decimal | None:
    """Return the caller's remaining budget in USD, None when unlimited or unknown
    (ROUTING_BUDGET_REMAINING; sync: it reads the database)."""
    lookup = _hook("ROUTING_BUDGET_REMAINING")
    return None if lookup is None else lookup(principal=principal)


@receiver(setting_changed)
def _reset_hooks(*, setting: str, **kwargs) -> None:
    if setting in _HOOKS:
        _hook.cache_clear()
