"""What the cache may do for a request: the team's policy (cached briefly) and the store breaker."""

import logging
import threading
import time
from dataclasses import dataclass

from django.conf import settings

logger = logging.getLogger(__name__)

POLICY_TTL_SECONDS = 30.0


@dataclass(frozen=True)
class TeamPolicy:
    """A team's cache settings (semcache.models.TeamCachePolicy); the defaults without a row."""

    enabled: bool = True
    threshold: float | None = None
    ttl_hours: float | None = None
    shared: bool = False


class Breaker:
    """Skip the store for a while after it failed."""

    def __init__(self):
        self.open_until = 0.0
        self._lock = threading.Lock()

    def is_open(self) -> bool:
        return time.monotonic() < self.open_until

    def trip(self) -> None:
        with self._lock:
            self.open_until = time.monotonic() + settings.SEMCACHE_REDIS_RETRY_SECONDS

    def reset(self) -> None:
        self.open_until = 0.0


breaker = Breaker()
_policies: dict[int, tuple[TeamPolicy, float]] = {}


def _load_policy(team_id: int) -> TeamPolicy:
    from semcache.models import TeamCachePolicy

    row = TeamCachePolicy.objects.filter(team_id=team_id).first()
    if row is None:
        return TeamPolicy()
    return TeamPolicy(enabled=row.enabled, threshold=row.similarity_threshold,
                      ttl_hours=row.ttl_hours, shared=row.share_across_teams)


async def team_policy(team_id: int | None) -> TeamPolicy:
    """Return the team's policy, read at most every POLICY_TTL_SECONDS; a database that fails
    leaves the last one read (or the defaults) in force."""
    if team_id is None:
        return TeamPolicy()
    cached = _policies.get(team_id)
    if cached and time.monotonic() - cached[1] < POLICY_TTL_SECONDS:
        return cached[0]
    try:
        from llmops.db import run_db

        policy = await run_db(_load_policy, team_id)
    except Exception:  # noqa: BLE001 - the database is someone else's failure to report
        logger.warning("semcache: team policy unavailable, using defaults", exc_info=True)
        policy = cached[0] if cached else TeamPolicy()
    _policies[team_id] = (policy, time.monotonic())
    return policy


def clear_policy_cache() -> None:
    """Forget cached team policies (tests, admin changes take effect at once)."""
    _policies.clear()
