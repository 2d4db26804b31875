"""A request that names a model is routed and admitted while the semantic cache embeds its
prompt (llmops/gateway/pipeline.py, `_lookup_or_prepare`). Whatever the lookup finds, the books
stay straight: a hit releases the admission in its own ledger row, a budget that would refuse
the call does not refuse a free hit, and a client that leaves mid-lookup leaks nothing. Live
gateway, in-process cache store, the fake provider, the openai SDK."""

import time
import uuid
from decimal import Decimal

import httpx
import openai
import pytest

from budgets.models import BudgetReservation, UsageRecord
from budgets.services import budget_set
from tests.toolkit.cache_engine import fresh_cache_engine
from tests.toolkit.fixtures import assert_books_straight, team_budget  # noqa: F401
from tests.toolkit.gateway_calls import caller_headers, wait_for_record

MODEL = "alongside-model"
QUESTION = "What is the capital city of France?"
PARAPHRASE = "What's the capital city of France?"


@pytest.fixture
def cache_on(settings):
    settings.ENABLE_SEMANTIC_CACHE = True
    settings.CACHE_SIMILARITY_THRESHOLD = 0.9
    settings.SEMCACHE_VERIFY_SHARE = 0.0
    with fresh_cache_engine(settings) as engine:
        yield engine


@pytest.fixture
def client(live_gateway, api_key, cache_on, fake_profile):
    fake_profile(MODEL, input_price_per_token="0.000001", output_price_per_token="0.000002")
    return openai.OpenAI(base_url=live_gateway.api_base, api_key=api_key.key, max_retries=0,
                         timeout=30)


def ask(client, content: str, request_id: str | None = None):
    raw = client.chat.completions.with_raw_response.create(
        model=MODEL, messages=[{"role": "user", "content": content}],
        extra_headers={"X-Request-ID": request_id or uuid.uuid4().hex})
    return raw.parse(), raw.headers


def store_question(client, engine) -> UsageRecord:
    answer, headers = ask(client, QUESTION)
    assert headers["X-LLMOps-Cache"] == "miss"
    deadline = time.monotonic() + 10
    while not list(engine.store.namespaces()):  # stored behind the answer
        assert time.monotonic() < deadline, "the answer was never stored"
        time.sleep(0.05)
    return UsageRecord.objects.get(request_id=headers["X-Request-ID"])


@pytest.mark.usefixtures("team_budget")
def test_a_miss_is_routed_and_admitted_alongside_the_embedding(client):
    answer, headers = ask(client, "How many moons does Jupiter have?")
    assert headers["X-LLMOps-Cache"] == "miss"
    stages = headers["Server-Timing"]
    assert "embed;dur=" in stages and "admission;dur=" in stages and "route;dur=" in stages
    record = UsageRecord.objects.get(request_id=headers["X-Request-ID"])
    assert record.cost > 0 and record.status == "ok" and record.estimated_cost > 0
    assert_books_straight()


@pytest.mark.usefixtures("team_budget")
def test_a_semantic_hit_releases_the_admission_made_alongside(client, cache_on):
    first = store_question(client, cache_on)
    answer, headers = ask(client, PARAPHRASE)
    assert headers["X-LLMOps-Cache"] == "hit_semantic"
    # The hit was admitted while its prompt was embedded: its row released that reservation.
    assert "admission;dur=" in headers["Server-Timing"]
    assert "X-LLMOps-Route-Reason" not in headers
    hit = UsageRecord.objects.get(request_id=headers["X-Request-ID"])
    assert hit.cost == 0 and hit.cache_saved == first.cost and hit.estimated_cost == 0
    assert hit.routing_reason == "cache:semantic"
    assert answer.choices[0].message.content
    assert_books_straight()


def test_a_budget_that_refuses_the_call_still_serves_a_free_hit(client, cache_on, api_key):
    store_question(client, cache_on)
    # Spent to the cent: any call would be refused (402); a hit costs nothing and is served.
    budget_set(scope="team", team=api_key.api_key.team, daily_limit=Decimal("0.00000001"))
    answer, headers = ask(client, PARAPHRASE)
    assert headers["X-LLMOps-Cache"] == "hit_semantic"
    with pytest.raises(openai.APIStatusError) as refused:
        ask(client, "Tell me about the rings of Saturn in detail.")
    assert refused.value.status_code == 402
    assert_books_straight()


class SlowEmbedder:
    """The real embedder, slowed down, so a client can leave while the prompt is embedded."""

    def __init__(self, inner, delay: float):
        self.inner, self.delay = inner, delay

    async def embed(self, text, **kwargs):
        import asyncio

        await asyncio.sleep(self.delay)
        return await self.inner.embed(text, **kwargs)

    async def embed_with_layers(self, text, **kwargs):
        import asyncio

        await asyncio.sleep(self.delay)
        return await self.inner.embed_with_layers(text, **kwargs)


@pytest.mark.usefixtures("team_budget")
def test_a_client_that_leaves_during_the_lookup_leaks_no_reservation(
        client, live_gateway, api_key, monkeypatch):
    from semcache import gateway
    from semcache.embedder import get_embedder

    ask(client, "Warm the path up, please.")
    monkeypatch.setattr(gateway, "get_embedder", lambda: SlowEmbedder(get_embedder(), 1.5))
    request_id = uuid.uuid4().hex
    with pytest.raises(httpx.TimeoutException):
        httpx.post(f"{live_gateway.api_base}/chat/completions",
                   json={"model": MODEL,
                         "messages": [{"role": "user", "content": "A question left behind."}]},
                   headers=caller_headers(api_key, request_id), timeout=0.75)
    # It was admitted alongside the lookup, so it leaves one row: nothing charged, nothing held.
    record = wait_for_record(request_id)
    assert record.status == "client_disconnected" and record.cost == 0
    deadline = time.monotonic() + 10
    while BudgetReservation.objects.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert_books_straight()
