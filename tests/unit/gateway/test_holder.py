"""This process as the holder of its reservations (llmops/gateway/holder.py): its id, and a beat
that says it is alive and releases what dead processes held."""

import os
from decimal import Decimal

import pytest
from django.utils import timezone

from budgets.models import BudgetReservation, ReservationHolder, UsageRecord
from budgets.services import request_admit
from llmops.gateway import holder
from tests.unit.budgets.factories import principal_of


def test_the_holder_id_names_this_process_and_stays_put():
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
