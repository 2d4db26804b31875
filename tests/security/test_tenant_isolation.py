"""Tenant isolation end to end: two teams, identical and near-identical prompts, one gateway.

The semantic cache runs on the shared Redis (DB 9, a prefix of this module's own) so entries go
through the production store. Team B must never be served team A's answer, see its ledger rows,
rate its answers, or lose its entries when team A's cache is purged.
"""

import time
import uuid
from io import StringIO

import httpx
import pytest
from django.core.management import call_command

from budgets.models import UsageRecord
from tests.toolkit.assertions import assert_openai_error
from tests.toolkit.fixtures import require_redis, scrape_metrics

pytestmark = pytest.mark.redis


@pytest.fixture
def redis_cache_store(settings):
    require_redis()
    settings.ENABLE_SEMANTIC_CACHE = True
    settings.SEMCACHE_REDIS_URL = "redis://127.0.0.1:6379/9"
    settings.SEMCACHE_KEY_PREFIX = f"reliab-tenant-{uuid.uuid4().hex[:8]}"
    from semcache.gateway import breaker, clear_policy_cache

    breaker.reset()
    clear_policy_cache()
    yield settings.SEMCACHE_KEY_PREFIX
    # Remove only this test's entries (never flush the shared Redis).
    try:
        from semcache.services import cache_purge

        cache_purge()
    except Exception:
        pass


@pytest.fixture
def teams(live_gateway, make_api_key, simulated_profiles, redis_cache_store):
    suffix = uuid.uuid4().hex[:6]
    a = make_api_key(team=f"tenant-a-{suffix}", user=f"alice-{suffix}")
    b = make_api_key(team=f"tenant-b-{suffix}", user=f"bob-{suffix}")
    with httpx.Client(base_url=live_gateway.url, timeout=30,
                      headers={"Authorization": f"Bearer {a.key}"}) as ca, \
            httpx.Client(base_url=live_gateway.url, timeout=30,
                         headers={"Authorization": f"Bearer {b.key}"}) as cb:
        yield {"a": (a, ca), "b": (b, cb)}


# Probes never store their own answer, so a hit can only come from an earlier entry.
PROBE = {"Cache-Control": "no-store"}


def _ask(client: httpx.Client, content: str, headers: dict | None = None,
         **extra) -> httpx.Response:
    # No max_tokens: an answer cut by the limit (finish_reason "length") is never cached.
    body = {"model": "simulated-standard", "messages": [{"role": "user", "content": content}],
            **extra}
    response = client.post("/v1/chat/completions", json=body, headers=headers or {})
    assert response.status_code == 200, response.text
    return response


def _until_cached(client: httpx.Client, content: str, **extra) -> httpx.Response:
    """Repeat a request until the write-behind store made it a hit (bounded)."""
    for _ in range(40):
        response = _ask(client, content, **extra)
        if response.headers["x-llmops-cache"].startswith("hit"):
            return response
        time.sleep(0.1)
    pytest.fail(f"never cached: {content!r} (last status {response.headers['x-llmops-cache']})")


def _prompt() -> str:
    return f"What is the capital city of France, case {uuid.uuid4().hex[:6]}?"


def test_identical_prompts_never_cross_teams(teams):
    _, client_a = teams["a"]
    key_b, client_b = teams["b"]
    prompt = _prompt()
    first = _ask(client_a, prompt)
    answer_a = first.json()["choices"][0]["message"]["content"]
    hit = _until_cached(client_a, prompt)
    assert hit.json()["choices"][0]["message"]["content"] == answer_a

    response_b = _ask(client_b, prompt, PROBE)
    assert not response_b.headers["x-llmops-cache"].startswith("hit")
    assert "x-llmops-similarity" not in response_b.headers
    record_b = UsageRecord.objects.get(request_id=response_b.headers["x-request-id"])
    assert record_b.team_id == key_b.api_key.team_id
    assert record_b.cache_status not in ("hit_exact", "hit_semantic") and record_b.cost > 0


def test_near_identical_prompts_never_cross_teams(teams):
    _, client_a = teams["a"]
    _, client_b = teams["b"]
    tag = uuid.uuid4().hex[:6]
    _until_cached(client_a, f"What is the capital city of France? ({tag})")
    variants = (f"what is the capital city of France ({tag})",
                f"What's the capital city of France? ({tag})",
                f"What is the capital city of France?  ({tag}) ")
    for variant in variants:
        response = _ask(client_b, variant, PROBE)
        assert not response.headers["x-llmops-cache"].startswith("hit"), variant
    # The control: the same variants are close enough to hit within team A.
    own = [_ask(client_a, v, PROBE).headers["x-llmops-cache"] for v in variants]
    assert any(status.startswith("hit") for status in own), own


def test_metadata_and_headers_cannot_select_another_tenant(teams):
    key_a, client_a = teams["a"]
    _, client_b = teams["b"]
    prompt = _prompt()
    _until_cached(client_a, prompt)
    a_team = key_a.api_key.team
    attempts = [
        {"metadata": {"team": a_team.name, "team_id": str(a_team.pk), "tenant": str(a_team.pk),
                      "cache_similarity_threshold": "0"}},
        {"user": a_team.name},
    ]
    for extra in attempts:
        response = _ask(client_b, prompt, PROBE, **extra)
        assert not response.headers["x-llmops-cache"].startswith("hit"), extra
    response = client_b.post("/v1/chat/completions", json={
        "model": "simulated-standard", "messages": [{"role": "user", "content": prompt}]},
        headers={**PROBE, "x-llmops-tenant": str(a_team.pk),
                                    "x-llmops-team": a_team.name,
                                    "x-llmops-cache-threshold": "0"})
    assert response.status_code in (200, 400)
    assert not response.headers.get("x-llmops-cache", "").startswith("hit")


def test_ledger_rows_and_feedback_stay_within_the_team(teams):
    key_a, client_a = teams["a"]
    key_b, client_b = teams["b"]
    response_a = _ask(client_a, _prompt())
    request_a = response_a.headers["x-request-id"]
    _ask(client_b, _prompt())
    assert set(UsageRecord.objects.filter(team=key_a.api_key.team)
               .values_list("api_key_id", flat=True)) == {key_a.api_key.pk}
    assert set(UsageRecord.objects.filter(team=key_b.api_key.team)
               .values_list("api_key_id", flat=True)) == {key_b.api_key.pk}
    # B cannot rate (nor learn anything about) A's answer.
    response = client_b.post("/v1/feedback", json={"request_id": request_a, "score": 0})
    assert_openai_error(response, 404)
    assert "tenant-a" not in response.text
    # B reusing A's request id reaches nothing of A's: B's request gets its own row.
    response = client_b.post("/v1/chat/completions", headers={"X-Request-ID": request_a}, json={
        "model": "simulated-standard", "messages": [{"role": "user", "content": "hello"}]})
    assert response.status_code == 200, response.text
    rows = dict(UsageRecord.objects.filter(request_id=request_a)
                .values_list("team_id", "api_key_id"))
    assert rows == {key_a.api_key.team_id: key_a.api_key.pk,
                    key_b.api_key.team_id: key_b.api_key.pk}


def _until_remembered(team_id: int, request_id: str) -> str:
    """Wait until the cache remembers which entry answered the request (the gateway does it
    off the request path once the hit's ledger row is written); return the entry id."""
    from semcache.services import get_engine, request_key

    for _ in range(40):
        entry_id = get_engine().store.entry_for_request(request_key(team_id=team_id,
                                                                    request_id=request_id))
        if entry_id:
            return entry_id
        time.sleep(0.05)
    pytest.fail(f"the cache never remembered request {request_id!r}")


def test_one_request_id_in_two_teams_each_gets_its_own_row_and_answer(teams):
    key_a, client_a = teams["a"]
    key_b, client_b = teams["b"]
    prompt_a, prompt_b = _prompt(), f"Name a prime number, case {uuid.uuid4().hex[:6]}."
    answer_a = _until_cached(client_a, prompt_a).json()["choices"][0]["message"]["content"]
    _until_cached(client_b, prompt_b)
    request_id = f"shared-{uuid.uuid4().hex[:8]}"
    # Both are cache hits under the same id: each writes its own ledger row.
    hit_a = _ask(client_a, prompt_a, {"X-Request-ID": request_id})
    hit_b = _ask(client_b, prompt_b, {"X-Request-ID": request_id})
    assert hit_a.headers["x-llmops-cache"].startswith("hit")
    assert hit_b.headers["x-llmops-cache"].startswith("hit")
    assert hit_a.json()["choices"][0]["message"]["content"] == answer_a
    assert hit_b.json()["choices"][0]["message"]["content"] != answer_a
    rows = {r.team_id: r for r in UsageRecord.objects.filter(request_id=request_id)}
    assert set(rows) == {key_a.api_key.team_id, key_b.api_key.team_id}
    assert all(r.cache_status.startswith("hit") for r in rows.values())

    # B marks its answer wrong: B's entry goes, A's stays.
    entry_a = _until_remembered(key_a.api_key.team_id, request_id)
    assert _until_remembered(key_b.api_key.team_id, request_id) != entry_a
    response = client_b.post("/v1/feedback", json={"request_id": request_id, "thumbs": "down"})
    assert response.status_code == 201, response.text
    assert response.json()["cache_updated"] is True
    assert _ask(client_a, prompt_a, PROBE).headers["x-llmops-cache"] == "hit_exact"
    assert not _ask(client_b, prompt_b, PROBE).headers["x-llmops-cache"].startswith("hit")
    feedback_rows = rows[key_b.api_key.team_id].feedback.all()
    assert [f.usage_record.team_id for f in feedback_rows] == [key_b.api_key.team_id]
    assert not rows[key_a.api_key.team_id].feedback.exists()


def test_a_used_request_id_on_a_cache_hit_is_refused_and_writes_nothing(teams):
    key_a, client_a = teams["a"]
    team_a = key_a.api_key.team_id
    first_prompt, other_prompt = _prompt(), _prompt()
    request_id = _until_cached(client_a, first_prompt).headers["x-request-id"]
    first_entry = _until_remembered(team_a, request_id)
    _until_cached(client_a, other_prompt)
    before = list(UsageRecord.objects.order_by("pk").values_list("pk", "request_id"))
    # The same id again, on a hit of another entry: refused, no ledger row, no cache trace.
    again = client_a.post("/v1/chat/completions", headers={"X-Request-ID": request_id}, json={
        "model": "simulated-standard", "messages": [{"role": "user", "content": other_prompt}]})
    assert_openai_error(again, 400, code="duplicate_request_id")
    assert list(UsageRecord.objects.order_by("pk").values_list("pk", "request_id")) == before
    time.sleep(0.3)  # what a served hit would have written off the request path by now
    assert _until_remembered(team_a, request_id) == first_entry
    # And a verdict on the id reaches the answer it names, not the refused request's.
    response = client_a.post("/v1/feedback", json={"request_id": request_id, "thumbs": "down"})
    assert response.status_code == 201 and response.json()["cache_updated"], response.text
    assert not _ask(client_a, first_prompt, PROBE).headers["x-llmops-cache"].startswith("hit")
    assert _ask(client_a, other_prompt, PROBE).headers["x-llmops-cache"] == "hit_exact"


def test_metrics_carry_no_prompt_key_or_user(teams, live_gateway):
    key_a, client_a = teams["a"]
    secret_word = f"zebra{uuid.uuid4().hex[:8]}"
    _ask(client_a, f"Tell me about {secret_word}")
    text = scrape_metrics(live_gateway.url)
    assert "llm_requests_total" in text
    assert secret_word not in text
    assert key_a.api_key.prefix not in text
    assert key_a.api_key.user.username not in text


def test_purge_scoped_to_one_team_leaves_the_other_intact(teams):
    key_a, client_a = teams["a"]
    _, client_b = teams["b"]
    prompt_a, prompt_b = _prompt(), _prompt()
    _until_cached(client_a, prompt_a)
    _until_cached(client_b, prompt_b)
    out = StringIO()
    call_command("purge_cache", "--team", key_a.api_key.team.name, stdout=out)
    assert "urged" in out.getvalue()
    after_a = _ask(client_a, prompt_a)
    assert not after_a.headers["x-llmops-cache"].startswith("hit")
    after_b = _ask(client_b, prompt_b)
    assert after_b.headers["x-llmops-cache"].startswith("hit")
