"""Clients that leave and upstreams that lie: every call that reached the provider is charged.

A live gateway, the fake provider on 127.0.0.1 and plain httpx clients that give up at chosen
moments: while the answer is being computed, before a stream's first token, in the middle of a
stream, and while admission itself is still in flight.
"""

import json
import threading
import time
import uuid
from decimal import Decimal

import httpx
import pytest

from budgets.models import BudgetReservation, UsageRecord
from routing.pricing import usage_cost
from tests.toolkit.assertions import metric_value
from tests.toolkit.fakeprovider import Behavior
from tests.toolkit.fixtures import no_semantic_cache, scrape_metrics  # noqa: F401

pytestmark = pytest.mark.usefixtures("no_semantic_cache")


def _wait_for_record(request_id: str, timeout: float = 10.0) -> UsageRecord:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        record = UsageRecord.objects.filter(request_id=request_id).first()
        if record is not None:
            return record
        time.sleep(0.05)
    raise AssertionError(f"no ledger row for {request_id} after {timeout}s")


def _headers(api_key, request_id: str) -> dict:
    return {"Authorization": f"Bearer {api_key.key}", "X-Request-ID": request_id}


def _warm_up(live_gateway, api_key, model: str) -> None:
    """One answered request first, so that the timed requests measure the path under test
    rather than the first request's start-up work."""
    response = httpx.post(f"{live_gateway.api_base}/chat/completions", json=_body(model),
                          headers=_headers(api_key, uuid.uuid4().hex), timeout=30)
    assert response.status_code == 200, response.text


def _body(model: str, **extra) -> dict:
    return {"model": model, "max_tokens": 64,
            "messages": [{"role": "user", "content": f"question {uuid.uuid4().hex}"}], **extra}


def test_a_client_that_gives_up_is_charged_what_the_finished_call_reports(
        live_gateway, api_key, fake_profile, fake_provider):
    profile = fake_profile("m-gone")
    _warm_up(live_gateway, api_key, "m-gone")
    fake_provider.enqueue(Behavior(delay_ms=1500, words=12))
    request_id = uuid.uuid4().hex
    with pytest.raises(httpx.TimeoutException):
        httpx.post(f"{live_gateway.api_base}/chat/completions", json=_body("m-gone"),
                   headers=_headers(api_key, request_id), timeout=0.75)
    record = _wait_for_record(request_id)
    assert record.status == "client_disconnected" and record.http_status == 499
    # The call ran to its end, detached: the provider's own usage is what is charged.
    assert record.completion_tokens == 12 and record.prompt_tokens > 0
    profile.refresh_from_db()
    assert record.cost == usage_cost(profile, prompt_tokens=record.prompt_tokens,
                                     completion_tokens=12) > 0
    assert not BudgetReservation.objects.exists()


def test_a_stream_left_before_its_first_token_is_charged_its_prompt(
        live_gateway, api_key, fake_profile, fake_provider):
    fake_profile("m-gone-early")
    _warm_up(live_gateway, api_key, "m-gone-early")
    fake_provider.enqueue(Behavior(delay_ms=1500, words=12))
    request_id = uuid.uuid4().hex
    with pytest.raises(httpx.TimeoutException):
        httpx.post(f"{live_gateway.api_base}/chat/completions",
                   json=_body("m-gone-early", stream=True),
                   headers=_headers(api_key, request_id), timeout=0.75)
    record = _wait_for_record(request_id)
    assert record.status == "client_disconnected"
    assert record.prompt_tokens >= record.estimated_prompt_tokens > 0
    assert record.completion_tokens == 0 and record.cost > 0
    assert not BudgetReservation.objects.exists()


def test_a_stream_left_mid_way_is_charged_prompt_and_tokens_received(
        live_gateway, api_key, fake_profile, fake_provider):
    fake_profile("m-gone-mid")
    fake_provider.enqueue(Behavior(words=200, interval_ms=20))
    request_id = uuid.uuid4().hex
    with httpx.stream("POST", f"{live_gateway.api_base}/chat/completions",
                      json=_body("m-gone-mid", stream=True, max_tokens=300),
                      headers=_headers(api_key, request_id), timeout=30) as response:
        received = 0
        for line in response.iter_lines():
            if line.startswith("data: ") and '"content"' in line:
                received += 1
            if received >= 5:
                break
    record = _wait_for_record(request_id)
    assert record.status == "client_disconnected"
    assert record.prompt_tokens > 0 and 5 <= record.completion_tokens < 200
    assert not BudgetReservation.objects.exists()


def test_a_client_that_leaves_during_admission_leaks_no_reservation(
        live_gateway, api_key, fake_profile, fake_provider, settings):
    """Admission blocks on the database (another connection holds the write lock, or the
    counter rows); the client leaves meanwhile; once the lock goes, the admission that went
    through is released with one ledger row and no charge, and no model is called."""
    from budgets.services import budget_set
    from tests.toolkit.gateway_process import is_postgres

    fake_profile("m-admission")
    _warm_up(live_gateway, api_key, "m-admission")
    budget_set(scope="key", api_key=api_key.api_key, daily_limit=Decimal("5"))
    request_id = uuid.uuid4().hex
    locked, release = threading.Event(), threading.Event()

    def hold_lock() -> None:
        from django.db import connections

        conn = connections.create_connection("default")
        try:
            with conn.cursor() as cursor:
                if is_postgres():
                    cursor.execute("BEGIN")
                    cursor.execute("SELECT 1 FROM budgets_budgetcounter FOR UPDATE")
                else:
                    cursor.execute("BEGIN IMMEDIATE")
                locked.set()
                release.wait(10)
                cursor.execute("ROLLBACK")
        finally:
            conn.close()

    holder = threading.Thread(target=hold_lock)
    holder.start()
    assert locked.wait(5)
    calls_before = len(fake_provider.requests)
    try:
        with pytest.raises(httpx.TimeoutException):
            httpx.post(f"{live_gateway.api_base}/chat/completions", json=_body("m-admission"),
                       headers=_headers(api_key, request_id), timeout=1.0)
        time.sleep(0.3)  # the server notices the hang-up while admission still waits
    finally:
        release.set()
        holder.join()
    record = _wait_for_record(request_id)
    assert record.status == "client_disconnected" and record.cost == 0
    assert len(fake_provider.requests) == calls_before
    deadline = time.monotonic() + 5
    while BudgetReservation.objects.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not BudgetReservation.objects.exists()


@pytest.mark.parametrize("usage, reason", [
    ({"prompt_tokens": -50, "completion_tokens": 8, "total_tokens": -42}, "negative"),
    ({"prompt_tokens": 10**12, "completion_tokens": 8, "total_tokens": 10**12}, "absurd"),
    ({"prompt_tokens": 12.5, "completion_tokens": 8, "total_tokens": 20.5}, "non_integer"),
    ({"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}, "under_reported"),
])
def test_hostile_usage_is_billed_at_the_gateway_count(live_gateway, api_key, fake_profile,
                                                      fake_provider, usage, reason):
    fake_profile("m-liar")
    body = {"id": "chatcmpl-liar", "object": "chat.completion", "created": 1, "model": "liar",
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": "one two three four"}}],
            "usage": usage}
    fake_provider.enqueue(Behavior(replay=json.dumps(body)))
    before = metric_value(scrape_metrics(), "llm_provider_usage_rejected_total",
                          model="m-liar", reason=reason)
    request_id = uuid.uuid4().hex
    response = httpx.post(f"{live_gateway.api_base}/chat/completions", json=_body("m-liar"),
                          headers=_headers(api_key, request_id), timeout=30)
    assert response.status_code == 200, response.text
    record = UsageRecord.objects.get(request_id=request_id)
    assert record.status == "ok"
    # The gateway's own count: the prompt's upper bound, the answer's text at most.
    assert record.prompt_tokens == record.estimated_prompt_tokens > 1
    assert 4 <= record.completion_tokens <= 8 and record.cost > 0
    assert response.json()["usage"]["prompt_tokens"] == record.prompt_tokens
    assert not BudgetReservation.objects.exists()
    after = metric_value(scrape_metrics(), "llm_provider_usage_rejected_total",
                         model="m-liar", reason=reason)
    assert after == before + 1


def test_an_honest_report_is_billed_as_reported(live_gateway, api_key, fake_profile,
                                                fake_provider):
    """Tokenizers differ: a report well below our upper bound but above what the text alone
    must cost is the provider's to make, and is billed as reported."""
    fake_profile("m-honest")
    prompt = _body("m-honest")
    body = {"id": "chatcmpl-honest", "object": "chat.completion", "created": 1, "model": "x",
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": "one two three four"}}],
            "usage": {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12}}
    fake_provider.enqueue(Behavior(replay=json.dumps(body)))
    request_id = uuid.uuid4().hex
    response = httpx.post(f"{live_gateway.api_base}/chat/completions", json=prompt,
                          headers=_headers(api_key, request_id), timeout=30)
    assert response.status_code == 200, response.text
    record = UsageRecord.objects.get(request_id=request_id)
    assert (record.prompt_tokens, record.completion_tokens) == (9, 3)
