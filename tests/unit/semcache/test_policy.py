"""The team's cache policy (cached briefly, defaults when the database fails) and the breaker."""

import time

import pytest
from asgiref.sync import sync_to_async

from semcache import policy
from semcache.policy import Breaker, TeamPolicy, clear_policy_cache, team_policy

pytestmark = pytest.mark.usefixtures("transactional_db")


@sync_to_async
def _team_with_policy(name: str, **fields) -> int:
    from llmops.models import Team
    from semcache.models import TeamCachePolicy

    team = Team.objects.create(name=name)
    TeamCachePolicy.objects.create(team=team, **fields)
    return team.pk


class TestTeamPolicy:
    async def test_no_team_or_no_row_is_the_defaults(self):
        clear_policy_cache()
        assert await team_policy(None) == TeamPolicy()
        assert await team_policy(987654) == TeamPolicy(enabled=True, threshold=None,
                                                        ttl_hours=None, shared=False)

    async def test_the_row_is_read_and_kept_for_a_while(self, monkeypatch):
        clear_policy_cache()
        team = await _team_with_policy("policy-read", enabled=False, ttl_hours=2.0,
                                       similarity_threshold=0.9, share_across_teams=True)
        assert await team_policy(team) == TeamPolicy(enabled=False, threshold=0.9,
                                                     ttl_hours=2.0, shared=True)
        reads = []
        monkeypatch.setattr(policy, "_load_policy", lambda team_id: reads.append(team_id))
        assert (await team_policy(team)).enabled is False
        assert reads == []  # within POLICY_TTL_SECONDS: not read again

    async def test_a_failing_database_keeps_the_last_policy_read(self, monkeypatch):
        clear_policy_cache()
        team = await _team_with_policy("policy-kept", enabled=False)
        assert (await team_policy(team)).enabled is False

        def down(team_id):
            raise RuntimeError("database down")

        monkeypatch.setattr(policy, "_load_policy", down)
        monkeypatch.setattr(policy, "POLICY_TTL_SECONDS", 0.0)
        assert (await team_policy(team)).enabled is False
        clear_policy_cache()
        assert await team_policy(team) == TeamPolicy()  # nothing read yet: the defaults


class TestBreaker:
    def test_trips_for_the_retry_interval_and_resets(self, settings):
        settings.SEMCACHE_REDIS_RETRY_SECONDS = 0.05
        breaker = Breaker()
        assert not breaker.is_open()
        breaker.trip()
        assert breaker.is_open()
        time.sleep(0.06)
        assert not breaker.is_open()
        breaker.trip()
        breaker.reset()
        assert not breaker.is_open()
