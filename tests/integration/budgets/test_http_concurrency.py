"""No overspend through the real HTTP path: 200 concurrent requests against one small budget.

On PostgreSQL the requests are spread over two gateway processes (the production server) that
share the database; on SQLite one in-process gateway takes them all. The provider answers
slowly, so admissions overlap while earlier requests are still in flight.
"""

import asyncio
import uuid
from decimal import Decimal

import httpx
import pytest

from budgets.models import BudgetCounter, UsageRecord
from budgets.services import budget_set
from routing.models import ModelProfile
from routing.selectors import invalidate_snapshot
from tests.toolkit.fixtures import assert_books_straight
from tests.toolkit.gateway_process import GatewayProcess, gateway_database_url, is_postgres

REQUESTS = 200
LIMIT = Decimal("0.02")


@pytest.fixture
def slow_profile(transactional_db):
    profile = ModelProfile.objects.create(
        name="slow-simulated", provider="simulated", upstream_model="slow-simulated",
        tier="premium", input_price_per_token="0.0000025", output_price_per_token="0.00001",
        context_window=128000, max_output_tokens=4096,
        options={"latency_ms": 300, "answer_tokens": 20},
    )
    invalidate_snapshot()
    yield profile
    invalidate_snapshot()


async def _fire(urls: list[str], key: str) -> list[tuple[str, int, dict]]:
    limits = httpx.Limits(max_connections=REQUESTS, max_keepalive_connections=0)
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:
        async def one(index: int) -> tuple[str, int, dict]:
            request_id = uuid.uuid4().hex
            response = await client.post(
                f"{urls[index % len(urls)]}/v1/chat/completions",
                headers={"Authorization": f"Bearer {key}", "X-Request-ID": request_id},
                json={"model": "slow-simulated", "max_tokens": 50,
                      "messages": [{"role": "user", "content": f"question {index}"}]},
            )
            return request_id, response.status_code, response.json()

        return await asyncio.gather(*(one(i) for i in range(REQUESTS)))


def _check(results, team) -> None:
    statuses = {status for _, status, _ in results}
    assert statuses <= {200, 402}, statuses
    admitted = [rid for rid, status, _ in results if status == 200]
    refused = [(rid, body) for rid, status, body in results if status == 402]
    assert admitted and refused, "the budget must both admit and refuse some requests"
    for _, body in refused:
        assert body["error"]["code"] == "budget_exceeded"
    # Every admitted request has exactly one ledger row; refused ones have none.
    assert UsageRecord.objects.filter(request_id__in=admitted).count() == len(admitted)
    assert not UsageRecord.objects.filter(request_id__in=[rid for rid, _ in refused]).exists()
    assert UsageRecord.objects.count() == len(admitted)
    spent = sum(r.cost for r in UsageRecord.objects.all())
    assert 0 < spent <= LIMIT
    for counter in BudgetCounter.objects.filter(budget__team=team):
        assert counter.spent <= LIMIT and counter.reserved == 0
    assert_books_straight()


def test_two_gateway_processes_never_overspend(slow_profile, api_key):
    if not is_postgres():
        pytest.skip("two processes share the database only on PostgreSQL")
    team = api_key.api_key.team
    budget_set(scope="team", team=team, daily_limit=LIMIT)
    database_url = gateway_database_url()
    with GatewayProcess(database_url=database_url) as first, \
            GatewayProcess(database_url=database_url) as second:
        results = asyncio.run(_fire([first.url, second.url], api_key.key))
    _check(results, team)


def test_one_gateway_never_overspends(slow_profile, live_gateway, api_key):
    team = api_key.api_key.team
    budget_set(scope="team", team=team, daily_limit=LIMIT)
    results = asyncio.run(_fire([live_gateway.url], api_key.key))
    _check(results, team)
