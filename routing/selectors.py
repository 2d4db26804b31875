"""Reads of model profiles, served from a short in-process snapshot (hot path: no query)."""

import time

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from llmops.db import run_db
from routing.models import ModelProfile

# Profiles change rarely (admin edits, price sync); a few seconds of staleness across processes is
# acceptable, and saves in this process invalidate at once.
SNAPSHOT_SECONDS = 5.0
_snapshot: tuple[float, dict[str, ModelProfile]] | None = None


def _load() -> dict[str, ModelProfile]:
    return {p.name: p for p in ModelProfile.objects.enabled()}


async def _enabled_by_name() -> dict[str, ModelProfile]:
    global _snapshot
    now = time.monotonic()
    if _snapshot is None or now - _snapshot[0] > SNAPSHOT_SECONDS:
        _snapshot = (now, await run_db(_load))
    return _snapshot[1]


async def profiles_enabled() -> list[ModelProfile]:
    """Return every enabled profile."""
    return list((await _enabled_by_name()).values())


async def profile_get_enabled(*, name: str) -> ModelProfile | None:
    """Return the enabled profile called `name`, or None."""
    return (await _enabled_by_name()).get(name)


def invalidate_snapshot() -> None:
    global _snapshot
    _snapshot = None


@receiver([post_save, post_delete], sender=ModelProfile)
def _profile_changed(**kwargs) -> None:
    invalidate_snapshot()
