"""Liveness and readiness probes (no authentication; they reveal nothing)."""

from django.conf import settings
from django.db import DatabaseError, connection
from django.http import JsonResponse


def healthz(request) -> JsonResponse:
    """Return 200 while the process is up."""
    return JsonResponse({"status": "ok"})


def readyz(request) -> JsonResponse:
    """Return 200 when the database (and Redis, when configured) answer, else 503."""
    checks: dict[str, str] = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks["database"] = "ok"
    except DatabaseError as exc:
        checks["database"] = f"error: {exc.__class__.__name__}"
    if settings.REDIS_URL:
        try:
            import redis

            redis.Redis.from_url(settings.REDIS_URL, socket_timeout=0.5,
                                 socket_connect_timeout=0.5).ping()
            checks["redis"] = "ok"
        except Exception as exc:  # any failure means "not ready"
            checks["redis"] = f"error: {exc.__class__.__name__}"
    ready = all(value == "ok" for value in checks.values())
    body = {"status": "ok" if ready else "unavailable", "checks": checks}
    if settings.ENABLE_SEMANTIC_CACHE:
        from semcache.selectors import vector_search_status

        # Where cache lookups search vectors: "redis" (its query engine), "process" (each
        # process's own index) or "undecided" (Redis not reached yet). One word: the probe is
        # public; the reason for a fallback is in the start-up log.
        body["cache_vector_search"] = vector_search_status()["index"]
    return JsonResponse(body, status=200 if ready else 503)
