"""Per-key rate limits, counted in Django's cache (Redis when configured, shared by processes)."""

import logging
import uuid

from rest_framework.throttling import SimpleRateThrottle

from llmops.models import ApiKey
from llmops.observability.refusals import (
    RATE_LIMIT,
    rate_refusal_record,
    rate_refusals_flush_due,
    refusal_report,
)

logger = logging.getLogger(__name__)

# DRF's sliding log as one atomic Redis script over a sorted set of request times (ms): drop
# what left the window, count, add this request if there is room. Returns {allowed, count in
# the window (this request included when allowed), oldest time in the window or 0}.
_SLIDING_LOG = """
local key, now, window, limit = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
local count = redis.call('ZCARD', key)
if count < limit then
  redis.call('ZADD', key, now, ARGV[4])
  redis.call('PEXPIRE', key, math.ceil(window))
  return {1, count + 1, 0}
end
local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')[2]
return {0, count, oldest}
"""


class ApiKeyRateThrottle(SimpleRateThrottle):
    """DRF's sliding-window limit per API key.

    On Redis (django-redis) the window is a sorted set updated by one Lua script: one round trip
    per request instead of DRF's GET and SET of the whole pickled history (54 KB each way for a
    key doing 100 req/s at 6000/min), and atomic, so two processes can never both take the last
    slot. On any other cache (the in-process default) DRF's own implementation runs. Redis
    trouble lets the request through, as the cache's IGNORE_EXCEPTIONS does for DRF's path.
    """

    scope = "api_key"

    def get_cache_key(self, request, view) -> str | None:
        api_key = getattr(request, "auth", None)
        if api_key is None or not hasattr(api_key, "prefix"):
            return None
        return self.cache_format % {"scope": self.scope, "ident": api_key.prefix}

    def allow_request(self, request, view) -> bool:
        if self._allow(request, view):
            rate_refusals_flush_due()  # a time check; writes this process's pending counts
            return True
        self._refused(request)
        return False

    def _allow(self, request, view) -> bool:
        client = _redis_client(self.cache)
        if client is None or self.rate is None:
            return super().allow_request(request, view)
        self.key = self.get_cache_key(request, view)
        if self.key is None:
            return True
        self.now = self.timer()
        now_ms = self.now * 1000
        try:
            allowed, count, oldest = client.eval(
                _SLIDING_LOG, 1, self.cache.make_key(f"{self.key}:log"), repr(now_ms),
                self.duration * 1000, self.num_requests, f"{now_ms!r}:{uuid.uuid4().hex[:8]}")
        except Exception:  # noqa: BLE001 - a rate limiter that fails must not fail requests
            logger.warning("rate limit store unavailable; request let through", exc_info=True)
            return True
        self._count, self._oldest = int(count), float(oldest) / 1000
        return bool(allowed)

    def _refused(self, request) -> None:
        """Report the refusal (log line, metric) and tally it for the key's daily count."""
        api_key = request.auth
        api_key_id = getattr(api_key, "pk", None)
        wait = self.wait()
        refusal_report(
            reason=RATE_LIMIT, scope=self.scope,
            request_id=getattr(getattr(request, "_request", None), "request_id", ""),
            api_key_id=api_key_id, key_prefix=api_key.prefix,
            user_id=getattr(api_key, "user_id", None), team_id=getattr(api_key, "team_id", None),
            team=_team_name(api_key),
            # Refused before the body is parsed: parsing it only to log the model would make
            # every refused request cost what the limit exists to save.
            requested_model=None,
            period=f"{self.duration}s", limit=self.num_requests, remaining=0, requested=1,
            unit="requests", retry_after=None if wait is None else round(wait, 3),
        )
        if api_key_id is not None:
            rate_refusal_record(api_key_id=api_key_id)

    def wait(self) -> float | None:
        if not hasattr(self, "_count"):
            return super().wait()
        # As DRF's: the time until the oldest request leaves the window, shared out over the
        # requests still available in it.
        remaining = self.duration - (self.now - self._oldest) if self._oldest else self.duration
        available = self.num_requests - self._count + 1
        return remaining / available if available > 0 else None


def _team_name(api_key) -> str | None:
    """Return the key's team name when authentication already loaded it (never a query)."""
    if isinstance(api_key, ApiKey) and ApiKey.team.is_cached(api_key):
        return api_key.team.name
    return None


def _redis_client(cache):
    """Return the raw redis-py client behind a django-redis cache, or None for other caches."""
    get_client = getattr(getattr(cache, "client", None), "get_client", None)
    if get_client is None:
        return None
    try:
        return get_client(write=True)
    except Exception:  # noqa: BLE001 - unreachable Redis: DRF's path (its errors are ignored)
        return None
