"""Each gateway process heartbeats as the holder of its reservations, and sweeps on the beat."""

import time
import uuid
from decimal import Decimal

import httpx
import pytest
from django.utils import timezone

from budgets.models import BudgetReservation, ReservationHolder, UsageRecord
from budgets.services import request_admit
from llmops.gateway import holder
from tests.unit.budgets.factories import principal_of


def test_the_holder_id_names_this_process_and_stays_put():
    import os

    assert holder.holder_id() == holder.holder_id()
    assert f":{os.getpid()}:" in holder.holder_id()


@pytest.mark.django_db(transaction=True)
async def test_a_beat_says_alive_and_releases_what_dead_processes_held(api_key, settings):
    from asgiref.sync import sync_to_async

    settings.BUDGET_HOLDER_TIMEOUT_SECONDS = 30
    principal = principal_of(api_key.api_key)
    old = timezone.now() - timezone.timedelta(minutes=5)
    await sync_to_async(request_admit)(principal=principal, request_id="orphan",
                                       estimated_cost=Decimal("0.5"), holder="gone:1:x", now=old)
    await sync_to_async(request_admit)(principal=principal, request_id="mine",
                                       estimated_cost=Decimal("0.5"), holder=holder.holder_id(),
                                       now=old)
    assert await holder.beat_once() == 1
    assert await ReservationHolder.objects.filter(pk=holder.holder_id()).aexists()
    assert [r async for r in BudgetReservation.objects.values_list("request_id", flat=True)] == [
        "mine"]
    orphan = await UsageRecord.objects.aget(request_id="orphan")
    assert orphan.error_kind == "abandoned" and orphan.cost == Decimal("0.5")


def test_a_served_request_starts_the_heartbeat(live_gateway, api_key, simulated_profiles,
                                              settings):
    response = httpx.post(f"{live_gateway.api_base}/chat/completions", timeout=30,
                          headers={"Authorization": f"Bearer {api_key.key}"},
                          json={"model": "simulated-efficient", "max_tokens": 8, "messages": [
                              {"role": "user", "content": f"hello {uuid.uuid4().hex}"}]})
    assert response.status_code == 200
    row = UsageRecord.objects.get(request_id=response.headers["x-request-id"])
    assert row.status == "ok"
    # The loop may already run from an earlier test, whose database was flushed since: then its
    # next beat writes the row again.
    deadline = time.monotonic() + settings.BUDGET_HEARTBEAT_SECONDS + 5
    while not ReservationHolder.objects.filter(pk=holder.holder_id()).exists():
        assert time.monotonic() < deadline, "no heartbeat from the serving process"
        time.sleep(0.1)
