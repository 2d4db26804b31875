"""Settlement (budgets/services/settlement.py): the ledger record type, one `UsageEntry` field per
ledger column, and one row per request that replaces its reservation with the actual cost."""

from dataclasses import fields
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from budgets.errors import DuplicateRequestId
from budgets.models import BudgetAlert, BudgetCounter, BudgetScope, UsageRecord
from budgets.services import UsageEntry, budget_set, request_admit, request_settle
from llmops.principal import Principal
from tests.unit.budgets.factories import counter, entry, principal_of, spend

D = Decimal

CALLER = Principal(api_key_id=3, key_prefix="k3", user_id=4, team_id=5, team_name="team-e",
                   tier="standard")


class TestLedgerRow:
    def test_every_ledger_column_comes_from_the_entry(self):
        """A column added to UsageRecord without its entry field fails here, not in production."""
        columns = {f.name for f in UsageRecord._meta.concrete_fields if not f.primary_key}
        whose_and_when = {"api_key", "user", "team", "created_at"}
        entry_fields = {f.name for f in fields(UsageEntry)} - {"principal", "recorded_at"}
        assert columns - whose_and_when == entry_fields

    def test_the_row_carries_the_entry_the_caller_and_the_time(self):
        at = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
        entry = UsageEntry(request_id="r1", principal=CALLER, requested_model="auto",
                           served_model="m", attempted_models=["x", "m"], prompt_tokens=9,
                           cost=Decimal("0.1234567890123456"), status="upstream_error",
                           error_kind="timeout", http_status=504, cache_similarity=0.5)
        row = entry.ledger_row(created_at=at)
        assert row.pk is None and row.created_at == at
        assert (row.api_key_id, row.user_id, row.team_id) == (3, 4, 5)
        assert (row.request_id, row.requested_model, row.served_model) == ("r1", "auto", "m")
        assert row.attempted_models == ["x", "m"] and row.prompt_tokens == 9
        assert (row.status, row.error_kind, row.http_status) == ("upstream_error", "timeout", 504)
        assert row.cache_similarity == 0.5

    def test_amounts_are_at_the_ledger_precision(self):
        entry = UsageEntry(request_id="r1", principal=CALLER, requested_model="m",
                           estimated_cost=Decimal("0.3333333333333333"),
                           cost=Decimal("0.1234567890123456"), cost_saved=Decimal("2"))
        row = entry.ledger_row(created_at=entry.recorded_at)
        assert (row.estimated_cost, row.cost, row.cost_saved) == (
            Decimal("0.333333333333"), Decimal("0.123456789012"), Decimal("2.000000000000"))
        assert str(row.cost_saved) == "2.000000000000"


@pytest.mark.django_db
class TestSettlement:
    def test_settle_statements_do_not_grow_with_budgets(self, api_key, principal):
        """Common path: reservation deleted, ledger row, counters locked, counters updated, the
        row's roll-ups (plus the savepoint pair); no look for a sweep's provisional row when the
        reservation was still there."""
        budget_set(scope=BudgetScope.KEY, api_key=api_key.api_key, daily_limit=D("5"),
                   monthly_limit=D("9"))
        budget_set(scope=BudgetScope.TEAM, team=api_key.api_key.team, daily_limit=D("100"))
        admission = request_admit(principal=principal, request_id="s1", estimated_cost=D("0.1"))
        with CaptureQueriesContext(connection) as ctx:
            request_settle(admission=admission, entry=entry(principal, "s1", "0.05"))
        statements = [q["sql"] for q in ctx.captured_queries
                      if "SAVEPOINT" not in q["sql"].upper()]
        # PostgreSQL: one statement (budgets/pg_settlement.py); SQLite: five in a transaction.
        assert len(statements) == (1 if connection.vendor == "postgresql" else 5), statements
        assert not any("abandoned" in sql for sql in statements)

    @pytest.mark.skipif(connection.vendor != "postgresql", reason="the PostgreSQL statement")
    def test_on_postgresql_one_statement_releases_records_charges_and_alerts_once(
        self, api_key, principal
    ):
        b = budget_set(scope=BudgetScope.KEY, api_key=api_key.api_key, daily_limit=D("1"),
                       alert_threshold=D("0.5"))
        first = request_admit(principal=principal, request_id="a1", estimated_cost=D("0.4"))
        second = request_admit(principal=principal, request_id="a2", estimated_cost=D("0.4"))
        record = request_settle(admission=first, entry=entry(principal, "a1", "0.3"))
        assert record.pk == UsageRecord.objects.get(request_id="a1").pk
        assert (counter(b).spent, counter(b).reserved) == (D("0.3"), D("0.4"))
        assert not BudgetAlert.objects.exists()  # 0.3 < 0.5 of the limit
        request_settle(admission=second, entry=entry(principal, "a2", "0.3"))
        assert (counter(b).spent, counter(b).reserved) == (D("0.6"), D(0))
        assert list(BudgetAlert.objects.values_list("kind", flat=True)) == ["threshold"]
        assert counter(b).threshold_alerted_at is not None
        third = request_admit(principal=principal, request_id="a3", estimated_cost=D("0.3"))
        request_settle(admission=third, entry=entry(principal, "a3", "0.1"))
        assert BudgetAlert.objects.count() == 1  # once per period
        # A settle whose reservation is gone writes nothing more and charges nothing more.
        assert request_settle(admission=third, entry=entry(principal, "a3", "0.1")).pk == \
            UsageRecord.objects.get(request_id="a3").pk
        assert counter(b).spent == D("0.7")

    def test_settle_is_idempotent_per_request_id(self, api_key, principal):
        b = budget_set(scope=BudgetScope.KEY, api_key=api_key.api_key, daily_limit=D("1"))
        admission = request_admit(principal=principal, request_id="r1", estimated_cost=D("0.5"))
        first = request_settle(admission=admission, entry=entry(principal, "r1", "0.2"))
        again = request_settle(admission=admission, entry=entry(principal, "r1", "0.2"))
        assert again.pk == first.pk
        assert UsageRecord.objects.filter(request_id="r1").count() == 1
        c = counter(b)
        assert (c.spent, c.reserved) == (D("0.2"), D(0))

    def test_settle_charges_exactly_entry_cost_for_a_cut_stream(self, api_key, principal):
        b = budget_set(scope=BudgetScope.KEY, api_key=api_key.api_key, daily_limit=D("1"))
        admission = request_admit(principal=principal, request_id="s", estimated_cost=D("0.9"))
        record = request_settle(admission=admission, entry=entry(
            principal, "s", "0.000123456789", stream=True, status="client_disconnected",
            completion_tokens=17))
        assert record.cost == D("0.000123456789")
        assert record.status == "client_disconnected"
        assert counter(b).spent == D("0.000123456789")
        assert counter(b).reserved == 0

    def test_upstream_failure_releases_and_records(self, api_key, principal):
        b = budget_set(scope=BudgetScope.KEY, api_key=api_key.api_key, daily_limit=D("1"))
        admission = request_admit(principal=principal, request_id="f", estimated_cost=D("0.9"))
        record = request_settle(admission=admission, entry=entry(
            principal, "f", "0", status="upstream_error", error_kind="http_500", http_status=502))
        assert (record.status, record.cost) == ("upstream_error", 0)
        assert (counter(b).spent, counter(b).reserved) == (0, 0)

    def test_cache_hit_without_admission_writes_a_zero_cost_row(self, api_key, principal):
        b = budget_set(scope=BudgetScope.KEY, api_key=api_key.api_key, daily_limit=D("1"))
        record = request_settle(admission=None, entry=entry(
            principal, "hit", "0", cost_saved=D("0.0042"), cache_status="hit_semantic",
            cache_similarity=0.97))
        assert (record.cost, record.cost_saved) == (0, D("0.0042"))
        assert not BudgetCounter.objects.filter(budget=b, spent__gt=0).exists()

    @pytest.mark.parametrize("first", ["hit", "admitted", "in flight"])
    def test_a_cache_hit_under_a_used_id_is_refused_and_writes_nothing(self, principal, first):
        if first == "hit":
            request_settle(admission=None, entry=entry(principal, "dup", cache_status="hit_exact"))
        elif first == "admitted":
            spend(principal, "dup", "0.1", "0.1")
        else:
            request_admit(principal=principal, request_id="dup", estimated_cost=D("0.1"))
        before = list(UsageRecord.objects.values_list("pk", "cost", "cache_status"))
        with pytest.raises(DuplicateRequestId) as refused:
            request_settle(admission=None, entry=entry(principal, "dup", cache_status="hit_exact",
                                                       cost_saved=D("0.5")))
        assert refused.value.code == "duplicate_request_id"
        assert list(UsageRecord.objects.values_list("pk", "cost", "cache_status")) == before

    def test_a_retried_cache_hit_settle_returns_its_own_row(self, principal):
        hit = entry(principal, "hit", cache_status="hit_exact")
        first = request_settle(admission=None, entry=hit)
        assert request_settle(admission=None, entry=hit).pk == first.pk
        assert UsageRecord.objects.filter(request_id="hit").count() == 1

    def test_every_teams_cache_hit_under_one_id_gets_its_own_row(self, make_api_key,
                                                                 principal):
        other = principal_of(make_api_key(team="team-b", user="bob").api_key)
        mine = request_settle(admission=None, entry=entry(principal, "h", cache_status="hit_exact"))
        theirs = request_settle(admission=None, entry=entry(other, "h", cache_status="hit_exact"))
        assert mine.pk != theirs.pk
        assert (mine.team_id, theirs.team_id) == (principal.team_id, other.team_id)
