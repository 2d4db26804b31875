"""Retry policy and circuit breaker (cooldown) per model profile; the gateway runs the loop.

Cooldown state lives in Redis when `ROUTING_REDIS_URL` or `REDIS_URL` is set, so every gateway
process sees a profile cool down at once; otherwise (or while Redis is unreachable) each process
keeps its own. Redis trouble never raises to the caller: it degrades to the per-process state.
"""

import asyncio
import logging
import random
import time
from dataclasses import dataclass, field

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

logger = logging.getLogger("llmops.routing")

# Failures that say nothing about the model's health (the request was bad, or the client left).
NOT_COUNTED_KINDS = frozenset({"bad_request", "client_disconnected", "not_configured"})
# After a Redis error, stay on per-process state this long before trying Redis again, so an
# outage costs one timeout every few seconds instead of one per request.
REDIS_RETRY_SECONDS = 5.0
REDIS_TIMEOUT_SECONDS = 0.25


@dataclass
class _LocalState:
    failures: list[float] = field(default_factory=list)
    cooldown_until: float = 0.0


_local: dict[str, _LocalState] = {}
_redis_client: tuple[asyncio.AbstractEventLoop, object] | None = None  # (its loop, client)
_redis_down_until = 0.0


def _name(profile) -> str:
    return profile if isinstance(profile, str) else profile.name


def _redis_url() -> str:
    return settings.ROUTING_REDIS_URL or getattr(settings, "REDIS_URL", "") or ""


def _redis():
    """Return the shared async Redis client, or None (not configured, or recently down)."""
    global _redis_client
    url = _redis_url()
    if not url or time.monotonic() < _redis_down_until:
        return None
    loop = asyncio.get_running_loop()
    # An asyncio Redis connection belongs to the loop that opened it: one client per loop.
    if _redis_client is None or _redis_client[0] is not loop:
        import redis.asyncio as aioredis

        _redis_client = (loop, aioredis.Redis.from_url(
            url, socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
            socket_timeout=REDIS_TIMEOUT_SECONDS, retry_on_timeout=False,
        ))
    return _redis_client[1]


def _redis_failed(exc: Exception) -> None:
    global _redis_down_until, _redis_client
    _redis_down_until = time.monotonic() + REDIS_RETRY_SECONDS
    _redis_client = None  # rebuild its connections after the pause
    logger.warning("Routing cooldown store unavailable, using per-process state: %s", exc)


def _key(kind: str, name: str) -> str:
    return f"{settings.ROUTING_REDIS_PREFIX}:{kind}:{name}"


# --- Per-process state ------------------------------------------------------------------------
def _local_active(name: str) -> bool:
    state = _local.get(name)
    return state is not None and state.cooldown_until > time.monotonic()


def _local_failure(name: str, retry_after: float | None) -> bool:
    now = time.monotonic()
    state = _local.setdefault(name, _LocalState())
    window = settings.ROUTING_FAILURE_WINDOW_SECONDS
    state.failures = [t for t in state.failures if now - t < window] + [now]
    seconds = _cooldown_seconds(len(state.failures), retry_after)
    if seconds:
        state.cooldown_until = max(state.cooldown_until, now + seconds)
        state.failures.clear()
        return True
    return False


def _cooldown_seconds(failures: int, retry_after: float | None) -> float:
    """Return how long to cool down after `failures` in the window (0: stay closed).

    A Retry-After from the provider opens the circuit at once for that long: every request would
    be refused until then anyway.
    """
    if retry_after and retry_after > 0:
        return min(max(retry_after, 1.0), settings.ROUTING_BACKOFF_MAX_SECONDS * 60)
    if failures >= settings.ROUTING_COOLDOWN_FAILURES:
        return settings.ROUTING_COOLDOWN_SECONDS
    return 0.0


# --- The seam ---------------------------------------------------------------------------------
async def cooldown_active(profile) -> bool:
    """Return whether `profile` (or its name) is cooling down after repeated failures."""
    name = _name(profile)
    client = _redis()
    if client is not None:
        try:
            return bool(await client.exists(_key("cooldown", name)))
        except Exception as exc:  # Redis down or misbehaving: never fail the request over it
            _redis_failed(exc)
    return _local_active(name)


async def record_failure(profile, *, kind: str, retry_after: float | None) -> None:
    """Count one failed call of `profile`; open its cooldown after enough of them."""
    if kind in NOT_COUNTED_KINDS:
        return
    name = _name(profile)
    client = _redis()
    if client is not None:
        try:
            await _redis_failure(client, name, retry_after)
            return
        except Exception as exc:
            _redis_failed(exc)
    if _local_failure(name, retry_after):
        logger.warning("Profile %s cooling down after failures (last: %s)", name, kind)


async def _redis_failure(client, name: str, retry_after: float | None) -> None:
    window = max(1, int(settings.ROUTING_FAILURE_WINDOW_SECONDS))
    failures_key = _key("failures", name)
    async with client.pipeline(transaction=True) as pipe:
        pipe.incr(failures_key)
        pipe.expire(failures_key, window, nx=True)
        count, _ = await pipe.execute()
    seconds = _cooldown_seconds(int(count), retry_after)
    if seconds:
        async with client.pipeline(transaction=True) as pipe:
            pipe.set(_key("cooldown", name), "1", px=max(1, int(seconds * 1000)))
            pipe.delete(failures_key)
            await pipe.execute()
        logger.warning("Profile %s cooling down for %.1fs (shared)", name, seconds)


async def record_success(profile, *, latency_ms: int, ttft_ms: int | None) -> None:
    """Note a successful call: failures are counted as consecutive, so a success resets them.

    Latency itself reaches the profile's observed percentiles through the ledger
    (`routing.services.profiles_refresh_observed`).
    """
    name = _name(profile)
    state = _local.get(name)
    if state is not None:
        state.failures.clear()
    client = _redis()
    if client is not None:
        try:
            await client.delete(_key("failures", name))
        except Exception as exc:
            _redis_failed(exc)


def backoff_delay(attempt: int, retry_after: float | None) -> float:
    """Return seconds to wait before retry number `attempt` (1-based).

    Exponential with full jitter (base · 2^(attempt-1), capped), never shorter than the
    provider's Retry-After, and never longer than ROUTING_BACKOFF_MAX_SECONDS.
    """
    cap = settings.ROUTING_BACKOFF_MAX_SECONDS
    ceiling = min(cap, settings.ROUTING_BACKOFF_BASE_SECONDS * 2 ** max(0, attempt - 1))
    delay = random.uniform(ceiling / 2, ceiling)
    if retry_after is not None and retry_after > 0:
        delay = max(delay, retry_after)
    return min(delay, cap)


def should_retry(*, attempt: int, retryable: bool, streamed: bool) -> bool:
    """Return whether the gateway may call the same profile again after a failure.

    Never after the first streamed byte: the client already holds part of an answer.
    """
    return retryable and not streamed and attempt <= settings.ROUTING_MAX_RETRIES


def reset_local_state() -> None:
    """Forget per-process cooldowns and the Redis client (tests, settings changes)."""
    global _redis_client, _redis_down_until
    _local.clear()
    _redis_client = None
    _redis_down_until = 0.0


@receiver(setting_changed)
def _settings_changed(*, setting: str, **kwargs) -> None:
    if setting in ("ROUTING_REDIS_URL", "REDIS_URL", "ROUTING_REDIS_PREFIX"):
        reset_local_state()
