"""Per-key rate limits, counted in Django's cache (Redis when configured, shared by processes).

DRF's SimpleRateThrottle keeps every request's timestamp in one cache value and rewrites it on
each request: at thousands of requests per minute that is tens of kilobytes each way, and two
processes can overwrite each other's list. This throttle counts in fixed windows with an atomic
increment instead (Redis INCR when Redis is configured): one small round trip, exact across
processes.
"""

from rest_framework.throttling import SimpleRateThrottle


class ApiKeyRateThrottle(SimpleRateThrottle):
    scope = "api_key"

    def get_cache_key(self, request, view) -> str | None:
        api_key = getattr(request, "auth", None)
        if api_key is None or not hasattr(api_key, "prefix"):
            return None
        return self.cache_format % {"scope": self.scope, "ident": api_key.prefix}

    def allow_request(self, request, view) -> bool:
        if self.rate is None:
            return True
        self.key = self.get_cache_key(request, view)
        if self.key is None:
            return True
        now = self.timer()
        window = int(now // self.duration)
        key = f"{self.key}:{window}"
        self._wait = (window + 1) * self.duration - now
        self.cache.add(key, 0, timeout=self.duration + 1)
        try:
            count = self.cache.incr(key)
        except ValueError:  # the window's key expired between add and incr
            self.cache.set(key, 1, timeout=self.duration + 1)
            count = 1
        if count is None:  # the shared cache is down: limits degrade open, requests flow
            return True
        return count <= self.num_requests

    def wait(self) -> float | None:
        return getattr(self, "_wait", None)
