"""What routing asks of other rooms, through callables the project names in settings, so routing
imports neither the providers nor budgets (docs/architecture.md, "Rooms").

ROUTING_PROFILE_AVAILABLE: `f(profile) -> bool`, whether the gateway holds what it needs to call
the profile (its provider's key); unset: every profile is available.
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

_HOOKS = ("ROUTING_PROFILE_AVAILABLE", "ROUTING_BUDGET_REMAINING")


@cache
def _hook(name: str) -> Callable | None:
    path = getattr(settings, name, "")
    return import_string(path) if path else None


def profile_available(profile: Any) -> bool:
    """Return whether the gateway can call `profile` (ROUTING_PROFILE_AVAILABLE)."""
    check = _hook("ROUTING_PROFILE_AVAILABLE")
    return True if check is None else bool(check(profile))


def budget_remaining(*, principal: Any) -> Decimal | None:
    """Return the caller's remaining budget in USD, None when unlimited or unknown
    (ROUTING_BUDGET_REMAINING; sync: it reads the database)."""
    lookup = _hook("ROUTING_BUDGET_REMAINING")
    return None if lookup is None else lookup(principal=principal)


@receiver(setting_changed)
def _reset_hooks(*, setting: str, **kwargs) -> None:
    if setting in _HOOKS:
        _hook.cache_clear()
