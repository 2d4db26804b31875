"""Three gateway replicas (`python -m llmops.serve` processes on their own ports) over one
PostgreSQL and one Redis with a query engine: the replicas are stateless.

- an answer stored through one replica is served by the others at once, semantically too (the
  vectors are searched in Redis; no replica holds an index or replays a stream);
- feedback through one replica evicts the answer for all, and so does `purge_cache`;
- a team never gets another team's answer, whichever replicas the two use;
- a tight budget holds with traffic spread over all three, and one replica SIGKILLed
  mid-traffic loses nothing: every answer a client got has its ledger row, the dead replica's
  reservations are released by a survivor's sweep, the books balance, and what it stored is
  still served.
"""

import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from io import StringIO

import httpx
import pytest
from django.core.management import call_command

from budgets.models import BudgetCounter, BudgetReservation, UsageRecord
from budgets.services import budget_set
from routing.models import ModelProfile
from routing.selectors import invalidate_snapshot
from tests.toolkit.cache_engine import fresh_cache_engine
from tests.toolkit.fixtures import assert_books_straight
from tests.toolkit.gateway_process import GatewayProcess, gateway_database_url, is_postgres

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.redis]

MODEL = "replica-standard"
HEARTBEAT_SECONDS = 1
HOLDER_TIMEOUT_SECONDS = 5  # a loaded replica must not look dead: 5 missed beats
LATENCY_MS = 150  # so that the killed replica holds reservations when it dies
DAILY_LIMIT = Decimal("0.0015")  # room for about a dozen reservations of 64 output tokens


@pytest.fixture(autouse=True)
def _postgres_only():
    if not is_postgres():
        pytest.skip("replicas share one database only on PostgreSQL "
                    "(set DATABASE_URL=postgres://...)")


@pytest.fixture
def accounts(transactional_db, make_api_key):
    ModelProfile.objects.create(
        name=MODEL, provider="simulated", upstream_model=MODEL, tier="standard",
        input_price_per_token="0.0000004", output_price_per_token="0.0000016",
        context_window=128000, max_output_tokens=4096,
        options={"chunk_interval_ms": 1, "latency_ms": LATENCY_MS})
    invalidate_snapshot()
    keys = {name: make_api_key(team=f"replica-{name}", user=f"replica-{name}-user")
            for name in ("a", "b0", "b1", "b2", "budget")}
    budget_set(scope="team", team=keys["budget"].api_key.team, daily_limit=DAILY_LIMIT)
    yield keys
    invalidate_snapshot()


@pytest.fixture
def replicas_env(search_redis) -> dict[str, str]:
    return {
        "ENABLE_SEMANTIC_CACHE": "true",
        "REDIS_URL": search_redis.url,
        "SEMCACHE_REDIS_URL": search_redis.url,
        "SEMCACHE_KEY_PREFIX": f"replicas-{uuid.uuid4().hex[:8]}",
        "BUDGET_HEARTBEAT_SECONDS": str(HEARTBEAT_SECONDS),
        "BUDGET_HOLDER_TIMEOUT_SECONDS": str(HOLDER_TIMEOUT_SECONDS),
    }


@pytest.fixture
def replicas(accounts, replicas_env):
    env = replicas_env
    started = [GatewayProcess(database_url=gateway_database_url(), env=env).launch()
               for _ in range(3)]
    try:
        for replica in started:
            replica.wait_ready(timeout=180)
        yield started
    finally:
        for replica in started:
            replica.stop()


def ask(replica, key, text, *, request_id=None, max_tokens=64, no_store=False):
    headers = {"Authorization": f"Bearer {key.key}", "X-Request-ID": request_id or uuid.uuid4().hex}
    if no_store:  # looked up, but the answer is not stored
        headers["Cache-Control"] = "no-store"
    return httpx.post(f"{replica.url}/v1/chat/completions", headers=headers, timeout=30,
                      json={"model": MODEL, "max_tokens": max_tokens,
                            "messages": [{"role": "user", "content": text}]})


def cache_status(response) -> str:
    assert response.status_code == 200, response.text
    return response.headers["x-llmops-cache"]


def until_hit(replica, key, text, *, timeout=10.0):
    """Ask until the answer comes from the cache (the first answer is stored behind the
    response, so the hit may take a moment to be written); return the last status."""
    deadline = time.monotonic() + timeout
    while True:
        status = cache_status(ask(replica, key, text))
        if status.startswith("hit") or time.monotonic() > deadline:
            return status
        time.sleep(0.1)


def test_three_replicas_share_one_cache_and_one_ledger(replicas, replicas_env, accounts,
                                                      settings):
    one, two, three = replicas
    a = accounts["a"]
    for replica in replicas:
        ready = httpx.get(f"{replica.url}/readyz", timeout=10).json()
        assert ready["cache_vector_search"] == "redis", ready

    # Stored through one, served by the others: exactly and semantically.
    question = f"What is the capital city of France? ({uuid.uuid4().hex[:6]})"
    assert cache_status(ask(one, a, question)) == "miss"
    assert until_hit(two, a, question) == "hit_exact"
    paraphrase = question.replace("What is", "What's")
    assert cache_status(ask(three, a, paraphrase)) == "hit_semantic"

    # Tenant isolation across replicas: another team asks the same on each replica (a team of
    # its own each time: a team's first answer is stored, and served to that team after).
    for i, replica in enumerate(replicas):
        assert cache_status(ask(replica, accounts[f"b{i}"], question)) == "miss"
    assert until_hit(one, accounts["b0"], question) == "hit_exact"  # b0's own answer

    # Feedback through one replica evicts the answer for all of them.
    served = ask(two, a, question)
    assert cache_status(served) == "hit_exact"
    feedback = httpx.post(f"{two.url}/v1/feedback", timeout=30,
                          headers={"Authorization": f"Bearer {a.key}"},
                          json={"request_id": served.headers["x-request-id"], "thumbs": "down"})
    assert feedback.status_code in (200, 201), feedback.text
    assert feedback.json()["cache_updated"] is True
    for replica in replicas:
        for text in (question, paraphrase):
            assert cache_status(ask(replica, a, text, no_store=True)) == "miss"

    # `purge_cache` (its own process, on the replicas' Redis) empties the cache for all.
    assert until_hit(two, a, question) == "hit_exact"
    with fresh_cache_engine(settings, redis_url=replicas_env["SEMCACHE_REDIS_URL"],
                            prefix=replicas_env["SEMCACHE_KEY_PREFIX"]):
        call_command("purge_cache", "--team", a.api_key.team.name, stdout=StringIO())
    for replica in replicas:
        assert cache_status(ask(replica, a, question, no_store=True)) == "miss"

    _budget_holds_and_a_killed_replica_loses_nothing(replicas, accounts)


def _budget_holds_and_a_killed_replica_loses_nothing(replicas, accounts):
    one, two, doomed = replicas
    key, a = accounts["budget"], accounts["a"]
    # An answer stored through the replica that will die.
    kept = f"Name the largest planet. ({uuid.uuid4().hex[:6]})"
    assert cache_status(ask(doomed, a, kept)) == "miss"
    assert until_hit(one, a, kept) == "hit_exact"

    outcomes: list[tuple[str, int]] = []  # (request id, status) of every answer a client got
    lock = threading.Lock()
    killed = threading.Event()

    def call(i: int) -> None:
        replica = replicas[i % 3]
        if replica is doomed and killed.is_set():
            replica = replicas[i % 2]
        request_id = f"budget-{i}-{uuid.uuid4().hex[:8]}"
        try:
            response = ask(replica, key, f"Tell me a fact about the number {i}. "
                                         f"({uuid.uuid4().hex})", request_id=request_id)
        except httpx.HTTPError:
            return  # the killed replica's clients see the connection die
        with lock:
            outcomes.append((request_id, response.status_code))

    with ThreadPoolExecutor(max_workers=9) as pool:
        futures = [pool.submit(call, i) for i in range(60)]
        # Kill the doomed replica while it holds reservations (its requests are in flight).
        deadline = time.monotonic() + 30
        while not BudgetReservation.objects.exists():
            assert time.monotonic() < deadline, "no request ever held a reservation"
            time.sleep(0.02)
        time.sleep(LATENCY_MS / 1000 / 2)
        doomed.kill()
        killed.set()
        for future in futures:
            future.result()

    # A survivor's sweep releases (and charges) what the dead replica held.
    deadline = time.monotonic() + HOLDER_TIMEOUT_SECONDS + 10 * HEARTBEAT_SECONDS
    while BudgetReservation.objects.exists() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert one.alive() and two.alive()

    answered = [request_id for request_id, status in outcomes if status == 200]
    refused = [request_id for request_id, status in outcomes if status in (402, 429)]
    assert answered and refused, outcomes  # the budget let some through and stopped the rest
    assert sorted(status for _, status in outcomes if status not in (200, 402, 429)) == []
    rows = set(UsageRecord.objects.filter(request_id__in=answered)
               .values_list("request_id", flat=True))
    assert rows == set(answered), "an answer a client got has no ledger row"
    for counter in BudgetCounter.objects.filter(budget__team=key.api_key.team):
        assert counter.spent <= DAILY_LIMIT, counter
    assert_books_straight()
    # What the dead replica stored is still served by the survivors.
    assert cache_status(ask(two, a, kept)) == "hit_exact"
