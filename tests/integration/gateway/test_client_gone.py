"""Clients that leave: every call that reached the provider is charged.

A live gateway, the fake provider on 127.0.0.1 and plain httpx clients that give up at chosen
moments: while the answer is being computed, before a stream's first token, in the middle of a
stream, and while admission itself is still in flight.
"""

import threading
import time
import uuid
from decimal import Decimal

import httpx
import pytest

from budgets.models import BudgetReservation, UsageRecord
from routing.pricing import usage_cost
from tests.toolkit.fakeprovider import Behavior
from tests.toolkit.fixtures import no_semantic_cache  # noqa: F401
from tests.toolkit.gateway_calls import (
    caller_headers,
    chat_body,
    read_content_chunks,
    wait_for_record,
)

pytestmark = pytest.mark.usefixtures("no_semantic_cache")


def _warm_up(live_gateway, api_key, model: str) -> None:
    """One answered request first, so that the timed requests measure the path under test
    rather than the first request's start-up work."""
    response = httpx.post(f"{live_gateway.api_base}/chat/completions", json=chat_body(model),
                          headers=caller_headers(api_key, uuid.uuid4().hex), timeout=30)
    assert response.status_code == 200, response.text


def test_a_client_that_gives_up_is_charged_what_the_finished_call_reports(
        live_gateway, api_key, fake_profile, fake_provider):
    profile = fake_profile("m-gone")
    _warm_up(live_gateway, api_key, "m-gone")
    fake_provider.enqueue(Behavior(delay_ms=1500, words=12))
    request_id = uuid.uuid4().hex
    with pytest.raises(httpx.TimeoutException):
        httpx.post(f"{live_gateway.api_base}/chat/completions", json=chat_body("m-gone"),
                   headers=caller_headers(api_key, request_id), timeout=0.75)
    record = wait_for_record(request_id)
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
                   json=chat_body("m-gone-early", stream=True),
                   headers=caller_headers(api_key, request_id), timeout=0.75)
    record = wait_for_record(request_id)
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
                      json=chat_body("m-gone-mid", stream=True, max_tokens=300),
                      headers=caller_headers(api_key, request_id), timeout=30) as response:
        assert response.status_code == 200
        read_content_chunks(response, 5)
    record = wait_for_record(request_id)
    assert record.status == "client_disconnected"
    assert record.prompt_tokens > 0 and 5 <= record.completion_tokens < 200
    assert record.cost > 0
    assert UsageRecord.objects.count() == 1
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
            httpx.post(f"{live_gateway.api_base}/chat/completions", json=chat_body("m-admission"),
                       headers=caller_headers(api_key, request_id), timeout=1.0)
        time.sleep(0.3)  # the server notices the hang-up while admission still waits
    finally:
        release.set()
        holder.join()
    record = wait_for_record(request_id)
    assert record.status == "client_disconnected" and record.cost == 0
    assert len(fake_provider.requests) == calls_before
    deadline = time.monotonic() + 5
    while BudgetReservation.objects.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not BudgetReservation.objects.exists()
