"""Verified hits end to end: a served semantic hit is also answered upstream in the background
(its own ledger row), the two answers compared, and the namespace's threshold moved by the
measured precision. Live gateway, scripted fake provider, openai SDK."""

import json
import time
import uuid
from decimal import Decimal
from io import StringIO

import openai
import pytest
from django.core.management import call_command

from budgets.models import UsageRecord
from semcache.models import ThresholdChange
from semcache.verification import Precision
from tests.toolkit.cache_engine import fresh_cache_engine
from tests.toolkit.fakeprovider import Behavior

STORED = "Paris is the capital and largest city of France."
OTHER = "Mitochondria produce most of the chemical energy that powers a cell."
BASE = 0.9
VERDICTS = 5  # with 5 verdicts, the Wilson interval of 0/5 is below 0.5 and that of 5/5 above


@pytest.fixture
def verifying(settings):
    """Every semantic hit verified; a move after 5 verdicts, against a precision target of 0.5."""
    settings.ENABLE_SEMANTIC_CACHE = True
    settings.CACHE_SIMILARITY_THRESHOLD = BASE
    settings.SEMCACHE_VERIFY_SHARE = 1.0
    settings.SEMCACHE_VERIFY_MIN_SAMPLES = VERDICTS
    settings.SEMCACHE_PRECISION_TARGET = 0.5
    settings.SEMCACHE_PRECISION_MARGIN = 0.0
    settings.SEMCACHE_THRESHOLD_STEP = 0.01
    settings.SEMCACHE_THRESHOLD_MIN = 0.85
    settings.SEMCACHE_THRESHOLD_MAX = 0.99
    settings.QUALITY_JUDGE_MODEL = ""
    with fresh_cache_engine(settings) as engine:
        yield engine


@pytest.fixture
def client(live_gateway, api_key, verifying, fake_profile):
    fake_profile("vh-model", input_price_per_token="0.000001", output_price_per_token="0.000002")
    return openai.OpenAI(base_url=live_gateway.api_base, api_key=api_key.key, max_retries=0,
                         timeout=30)


def ask(client, content: str):
    raw = client.chat.completions.with_raw_response.create(
        model="vh-model", messages=[{"role": "user", "content": content}],
        extra_headers={"Cache-Control": "no-store"})
    return raw.parse().choices[0].message.content, raw.headers


def bounded(predicate, what: str):
    for _ in range(200):
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    pytest.fail(f"never {what}")


def stored_question(client, fake_provider, engine) -> tuple[str, str]:
    """Store STORED as the answer to a question; return (the question, its namespace)."""
    tag = uuid.uuid4().hex[:6]
    question = f"What is the capital city of France? ({tag})"
    fake_provider.enqueue(Behavior(text=STORED))
    raw = client.chat.completions.with_raw_response.create(
        model="vh-model", messages=[{"role": "user", "content": question}])
    assert raw.headers["x-llmops-cache"] == "miss"
    namespaces = bounded(lambda: list(engine.store.namespaces()), "stored")
    return question, namespaces[0]


def paraphrase(question: str) -> str:
    return question.replace("What is", "What's")


def verified_hits(client, fake_provider, engine, namespace, question, fresh_answer: str):
    """Send VERDICTS semantic hits whose verification calls answer `fresh_answer`; return the
    ledger rows of the hits."""
    rows = []
    for n in range(VERDICTS):
        # The first verification call answers late: the client's answer does not wait for it.
        fake_provider.enqueue(Behavior(text=fresh_answer, delay_ms=1500 if n == 0 else 0))
        content, headers = ask(client, paraphrase(question))
        assert headers["x-llmops-cache"] == "hit_semantic"
        assert content == STORED  # the cached answer
        request_id = headers["x-request-id"]
        if n == 0:  # answered while its verification was still upstream
            assert not UsageRecord.objects.filter(request_id=f"{request_id}.verify").exists()
        rows.append(UsageRecord.objects.get(request_id=request_id))
        bounded(lambda n=n: sum(_counts(engine, namespace)) == n + 1, "verified")
    return rows


def _counts(engine, namespace) -> tuple[int, int]:
    stats = engine.store.stats(namespace)
    return stats["verified_agree"], stats["verified_disagree"]


def test_a_disagreeing_provider_raises_the_namespace_threshold(client, fake_provider,
                                                               verifying, api_key):
    engine = verifying
    question, namespace = stored_question(client, fake_provider, engine)
    hits = verified_hits(client, fake_provider, engine, namespace, question, OTHER)
    assert _counts(engine, namespace) == (0, VERDICTS)
    # Each verification is a call of its own: charged, on its own ledger row.
    for hit in hits:
        check = UsageRecord.objects.get(request_id=f"{hit.request_id}.verify")
        assert check.routing_reason == "cache:verify" and check.cache_status == "bypass"
        assert check.served_model == "vh-model" and check.cost > 0 and check.status == "ok"
        assert check.team_id == hit.team_id and hit.cost == 0
    change = bounded(lambda: ThresholdChange.objects.filter(namespace=namespace).first(),
                     "logged")
    assert change.old_threshold == BASE
    assert change.new_threshold == pytest.approx(BASE + 0.01)
    assert (change.agree, change.disagree) == (0, VERDICTS)
    assert change.team_id == api_key.api_key.team_id
    assert engine.threshold_for(namespace, BASE) == pytest.approx(BASE + 0.01)


def test_an_agreeing_provider_measures_high_precision_and_lowers_it_within_bounds(
        client, fake_provider, verifying, settings):
    engine = verifying
    question, namespace = stored_question(client, fake_provider, engine)
    verified_hits(client, fake_provider, engine, namespace, question, STORED)
    assert _counts(engine, namespace) == (VERDICTS, 0)
    precision = Precision(*_counts(engine, namespace))
    assert precision.value == 1.0 and precision.interval[0] > 0.5
    change = bounded(lambda: ThresholdChange.objects.filter(namespace=namespace).first(),
                     "logged")
    assert change.new_threshold == pytest.approx(BASE - 0.01)
    assert engine.threshold_for(namespace, BASE) == pytest.approx(BASE - 0.01)
    # Never below SEMCACHE_THRESHOLD_MIN, however long it agrees.
    for _ in range(VERDICTS * 10):
        engine.verification_record(namespace, agreed=True, base=BASE)
    assert engine.threshold_for(namespace, BASE) == pytest.approx(0.85)


def test_precision_is_shown_in_cache_stats_savings_report_and_dashboard(
        client, fake_provider, verifying, admin_client):
    engine = verifying
    question, namespace = stored_question(client, fake_provider, engine)
    verified_hits(client, fake_provider, engine, namespace, question, OTHER)
    bounded(lambda: UsageRecord.objects.filter(routing_reason="cache:verify").count() == VERDICTS,
            "settled")
    out = StringIO()
    call_command("cache_stats", "--json", stdout=out)
    stats = json.loads(out.getvalue())
    row = next(r for r in stats["namespaces"] if r["namespace"] == namespace)
    assert (row["verified_agree"], row["verified_disagree"], row["precision"]) == (0, VERDICTS,
                                                                                   0.0)
    assert row["precision_interval"][1] < 0.5 and row["threshold"] == pytest.approx(BASE + 0.01)
    out = StringIO()
    call_command("savings_report", "--json", stdout=out)
    report = json.loads(out.getvalue())
    assert report["verifications"] == VERDICTS
    assert Decimal(report["verification_cost"]) == sum(
        UsageRecord.objects.filter(routing_reason="cache:verify").values_list("cost", flat=True))
    assert report["verified_hits"]["verified_disagree"] == VERDICTS
    assert report["routed"] == 0  # verification calls are not routing decisions
    page = admin_client.get("/dashboard/").content.decode()
    assert 'id="table-verified"' in page and f"0 / {VERDICTS}" in page


def test_every_shadow_would_hit_is_verified_by_its_own_call(client, fake_provider, verifying,
                                                            api_key, settings):
    engine = verifying
    question, namespace = stored_question(client, fake_provider, engine)
    fake_provider.enqueue(Behavior(text=STORED))  # the served hit's verification: agreeing
    assert ask(client, paraphrase(question))[1]["x-llmops-cache"] == "hit_semantic"
    bounded(lambda: sum(_counts(engine, namespace)) == 1, "verified")
    settings.SEMCACHE_VERIFY_SHARE = 0.0  # served hits no longer sampled; shadow ones still are
    team = api_key.api_key.team
    team.shadow_mode = True
    team.save()
    calls = len(fake_provider.requests)
    fake_provider.enqueue(Behavior(text=OTHER))
    content, headers = ask(client, paraphrase(question))
    assert content == OTHER and headers["x-llmops-cache"] == "miss"  # served as sent
    bounded(lambda: _counts(engine, namespace) == (1, 1), "compared")
    assert len(fake_provider.requests) == calls + 1  # no call beyond the request's own
    assert not UsageRecord.objects.filter(request_id=f"{headers['x-request-id']}.verify").exists()
