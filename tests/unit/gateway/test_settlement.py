"""The ledger entry the gateway builds: filled as the request goes, priced and written once."""

from dataclasses import fields
from decimal import Decimal
from types import SimpleNamespace

import pytest

from budgets.models import UsageRecord
from budgets.services import request_admit
from llmops.gateway.settlement import DISCONNECTED, Outcome, entry_finish, settle
from llmops.providers.base import Usage
from routing.pricing import usage_cost
from tests.unit.budgets.factories import principal_of
from tests.unit.gateway.factories import profile, request


def answered(ctx, served, usage: Usage) -> Outcome:
    outcome = Outcome.of(ctx, reason="explicit")
    outcome.entry.attempted_models.append(served.name)
    outcome.profile, outcome.usage = served, usage
    return outcome


class TestOutcome:
    def test_starts_with_the_request_and_records_a_failure(self):
        ctx = request(model="gpt-x", stream=True)
        outcome = Outcome.of(ctx, reason="auto")
        entry = outcome.entry
        assert (entry.request_id, entry.principal, entry.requested_model) == (
            "req-1", ctx.principal, "gpt-x")
        assert (entry.routing_reason, entry.stream, entry.status) == ("auto", True, "ok")
        outcome.fail(*DISCONNECTED)
        assert (entry.status, entry.error_kind, entry.http_status) == (
            "client_disconnected", "client_disconnected", 499)


class TestEntryFinish:
    def test_an_answer_is_priced_at_the_served_model_with_the_request_estimates(self):
        ctx = request(cache_similarity=0.5)
        ctx.cache_status, ctx.estimated_prompt_tokens = "miss", 120
        ctx.estimated_cost = Decimal("0.01")
        served = profile("m", reasoning_price_per_token=Decimal("0.000004"))
        usage = Usage(prompt_tokens=100, completion_tokens=20, cached_tokens=10,
                      reasoning_tokens=5)
        outcome = answered(ctx, served, usage)
        entry = entry_finish(ctx, outcome)
        assert entry is outcome.entry
        assert entry.served_model == "m" and entry.attempted_models == ["m"]
        assert (entry.prompt_tokens, entry.completion_tokens, entry.cached_tokens,
                entry.reasoning_tokens) == (100, 20, 10, 5)
        assert entry.cost == usage_cost(served, prompt_tokens=100, completion_tokens=20,
                                        cached_tokens=10, reasoning_tokens=5) > 0
        assert (entry.estimated_prompt_tokens, entry.estimated_cost) == (120, Decimal("0.01"))
        assert (entry.cache_status, entry.cache_similarity) == ("miss", 0.5)
        assert entry.cost_saved == 0 and entry.latency_ms >= 0

    def test_a_cache_hit_costs_nothing_and_records_what_it_saved(self):
        ctx = request()
        ctx.cache_status, ctx.cache_similarity = "hit_semantic", 0.97
        hit = SimpleNamespace(model="cached-model", kind="semantic")
        entry = entry_finish(ctx, Outcome.of(ctx, reason="cache:semantic"),
                             cost_saved=Decimal("0.003"), hit=hit)
        assert (entry.served_model, entry.cost, entry.cost_saved) == (
            "cached-model", 0, Decimal("0.003"))
        assert (entry.prompt_tokens, entry.completion_tokens) == (0, 0)
        assert (entry.routing_reason, entry.cache_status) == ("cache:semantic", "hit_semantic")

    def test_a_request_that_reached_no_model_costs_nothing(self):
        ctx = request()
        outcome = Outcome.of(ctx)
        outcome.fail("upstream_error", "connect_error", 502)
        entry = entry_finish(ctx, outcome)
        assert (entry.served_model, entry.cost, entry.status) == ("", 0, "upstream_error")


@pytest.mark.usefixtures("transactional_db")
class TestSettle:
    async def test_writes_the_one_ledger_row_of_the_entry(self, api_key):
        from asgiref.sync import sync_to_async

        principal = principal_of(api_key.api_key)
        ctx = request(principal=principal)
        ctx.estimated_cost = Decimal("0.5")
        admission = await sync_to_async(request_admit)(
            principal=principal, request_id=ctx.request_id, estimated_cost=ctx.estimated_cost)
        outcome = answered(ctx, profile("m"), Usage(prompt_tokens=1000, completion_tokens=50))
        outcome.entry.upstream_latency_ms = 40
        entry = await settle(ctx, admission, outcome)

        rows = await sync_to_async(list)(UsageRecord.objects.all())
        assert len(rows) == 1
        row = rows[0]
        for name in (f.name for f in fields(entry)):
            if name not in {"principal", "recorded_at"}:
                assert getattr(row, name) == getattr(entry, name), name
        assert (row.api_key_id, row.team_id, row.created_at) == (
            principal.api_key_id, principal.team_id, admission.admitted_at)
        assert row.cost == Decimal("0.0011") and "settle" in ctx.timings

    async def test_a_settlement_whose_caller_is_cancelled_is_still_written(self, api_key):
        """The client left while the row was queued for the database pool (every pool thread
        busy): cancelling the request must not cancel its settlement."""
        import asyncio
        import threading

        from asgiref.sync import sync_to_async
        from django.conf import settings

        from budgets.models import BudgetReservation
        from llmops.db import _get_executor

        principal = principal_of(api_key.api_key)
        ctx = request(principal=principal)
        ctx.estimated_cost = Decimal("0.5")
        admission = await sync_to_async(request_admit)(
            principal=principal, request_id=ctx.request_id, estimated_cost=ctx.estimated_cost)
        outcome = answered(ctx, profile("m"), Usage(prompt_tokens=1000, completion_tokens=50))
        release = threading.Event()
        blockers = [_get_executor().submit(release.wait, 10)
                    for _ in range(settings.GATEWAY_DB_THREADS)]
        try:
            settling = asyncio.ensure_future(settle(ctx, admission, outcome))
            await asyncio.sleep(0.05)  # the write is queued behind the blockers
            settling.cancel()
            with pytest.raises(asyncio.CancelledError):
                await settling
        finally:
            release.set()
        for blocker in blockers:
            await asyncio.wrap_future(blocker)
        for _ in range(100):
            if await UsageRecord.objects.aexists():
                break
            await asyncio.sleep(0.05)
        [row] = [row async for row in UsageRecord.objects.all()]
        assert row.request_id == ctx.request_id and row.cost == Decimal("0.0011")
        assert not await BudgetReservation.objects.aexists()
