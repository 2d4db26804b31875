"""Admission (budgets/services/admission.py): reserve an upper bound on every budget that
applies, or refuse."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from budgets import selectors
from budgets.errors import BudgetExceeded, DuplicateRequestId
from budgets.models import (
    Budget,
    BudgetAction,
    BudgetCounter,
    BudgetReservation,
    BudgetScope,
    UsageRecord,
)
from budgets.services import budget_set, request_admit, request_settle
from tests.unit.budgets.factories import counter, entry, principal_of, spend

pytestmark = pytest.mark.django_db

D = Decimal


class TestAdmission:
    def test_no_budget_admits_and_reserves_nothing(self, principal):
        admission = request_admit(principal=principal, request_id="r1", estimated_cost=D("5"))
        assert admission.counter_ids == []
        assert selectors.budget_remaining(principal=principal) is None
        record = request_settle(admission=admission, entry=entry(principal, "r1", "0.1"))
        assert record.cost == D("0.1")
        assert not BudgetReservation.objects.exists()

    def test_reserve_then_settle_replaces_reservation_with_actual_cost(self, api_key, principal):
        team = budget_set(scope=BudgetScope.TEAM, team=api_key.api_key.team, daily_limit=D("1"))
        admission = request_admit(principal=principal, request_id="r1", estimated_cost=D("0.6"))
        c = counter(team)
        assert (c.reserved, c.spent) == (D("0.6"), D(0))
        assert selectors.budget_remaining(principal=principal) == D("0.4")
        request_settle(admission=admission, entry=entry(principal, "r1", "0.25"))
        c.refresh_from_db()
        assert (c.reserved, c.spent) == (D(0), D("0.25"))
        assert selectors.budget_remaining(principal=principal) == D("0.75")

    def test_refusal_names_budget_period_limit_remaining_and_reserves_nothing(
        self, api_key, principal
    ):
        team = budget_set(scope=BudgetScope.TEAM, team=api_key.api_key.team, daily_limit=D("1"))
        key = budget_set(scope=BudgetScope.KEY, api_key=api_key.api_key, monthly_limit=D("10"))
        request_admit(principal=principal, request_id="r1", estimated_cost=D("0.6"))
        with pytest.raises(BudgetExceeded) as exc:
            request_admit(principal=principal, request_id="r2", estimated_cost=D("0.5"))
        err = exc.value
        assert err.code == "budget_exceeded"  # rendered as HTTP 402 by llmops.errors
        assert "team team-a" in err.message and "daily" in err.message
        assert "$1.000000" in err.message and "$0.400000" in err.message
        assert err.extra["period"] == "day"
        assert err.extra["limit"] == "1.000000000000"
        assert D(err.extra["remaining"]) == D("0.4")
        assert err.extra["budget"]["scope"] == "team"
        # The key budget (checked first, had room) holds only the admitted request.
        assert counter(key, "month").reserved == D("0.6")
        assert counter(team).reserved == D("0.6")
        assert not BudgetReservation.objects.filter(request_id="r2").exists()

    def test_a_refusal_below_a_micro_dollar_still_names_its_amounts(self, api_key, principal):
        budget_set(scope=BudgetScope.KEY, api_key=api_key.api_key,
                   daily_limit=D("0.0000005"))
        request_admit(principal=principal, request_id="r1", estimated_cost=D("0.0000002"))
        with pytest.raises(BudgetExceeded) as exc:
            request_admit(principal=principal, request_id="r2", estimated_cost=D("0.0000004"))
        message = exc.value.message
        assert "limit of $0.0000005 has $0.0000003 remaining" in message
        assert "maximum cost of $0.0000004." in message

    def test_exactly_the_limit_is_admitted(self, api_key, principal):
        budget_set(scope=BudgetScope.GLOBAL, total_limit=D("1"))
        spend(principal, "a", "0.5", "0.5")
        spend(principal, "b", "0.5", "0.5")
        with pytest.raises(BudgetExceeded):
            request_admit(principal=principal, request_id="c", estimated_cost=D("0.000000000001"))

    def test_every_applicable_budget_is_reserved_and_global_refusal_rolls_back_all(
        self, api_key, make_api_key, principal
    ):
        key = budget_set(scope=BudgetScope.KEY, api_key=api_key.api_key, daily_limit=D("5"))
        user = budget_set(scope=BudgetScope.USER, user=api_key.api_key.user, daily_limit=D("5"))
        team = budget_set(scope=BudgetScope.TEAM, team=api_key.api_key.team, total_limit=D("5"))
        glob = budget_set(scope=BudgetScope.GLOBAL, monthly_limit=D("1"))
        other = principal_of(make_api_key(team="team-b", user="bob").api_key)
        request_admit(principal=other, request_id="other", estimated_cost=D("0.7"))
        with pytest.raises(BudgetExceeded) as exc:
            request_admit(principal=principal, request_id="r1", estimated_cost=D("0.5"))
        assert exc.value.extra["budget"]["scope"] == "global"
        for budget, period in ((key, "day"), (user, "day"), (team, "total")):
            assert counter(budget, period).reserved == 0
        assert counter(glob, "month").reserved == D("0.7")
        admission = request_admit(principal=principal, request_id="r2", estimated_cost=D("0.3"))
        assert len(admission.counter_ids) == 4

    def test_alert_only_budget_never_refuses(self, api_key, principal):
        b = budget_set(scope=BudgetScope.TEAM, team=api_key.api_key.team, daily_limit=D("1"),
                       action=BudgetAction.ALERT_ONLY)
        spend(principal, "a", "2", "1.5")
        assert counter(b).spent == D("1.5")
        # Alert-only budgets don't limit what routing sees either.
        assert selectors.budget_remaining(principal=principal) is None

    def test_reused_request_id_is_refused(self, principal):
        spend(principal, "same", "0.1", "0.1")
        with pytest.raises(DuplicateRequestId):
            request_admit(principal=principal, request_id="same", estimated_cost=D("0.1"))
        request_admit(principal=principal, request_id="inflight", estimated_cost=D("0.1"))
        with pytest.raises(DuplicateRequestId):
            request_admit(principal=principal, request_id="inflight", estimated_cost=D("0.1"))

    def test_request_ids_are_per_team(self, make_api_key, principal):
        """A request id is the client's: another team's use of it is no conflict, and each
        team's request gets its own reservation and ledger row."""
        other = principal_of(make_api_key(team="team-b", user="bob").api_key)
        mine = spend(principal, "shared-id", "0.2", "0.1")
        inflight = request_admit(principal=other, request_id="shared-id", estimated_cost=D("0.3"))
        assert BudgetReservation.objects.get(request_id="shared-id").team_id == other.team_id
        theirs = request_settle(admission=inflight, entry=entry(other, "shared-id", "0.05"))
        assert mine.pk != theirs.pk
        rows = dict(UsageRecord.objects.filter(request_id="shared-id")
                    .values_list("team_id", "cost"))
        assert rows == {principal.team_id: D("0.1"), other.team_id: D("0.05")}
        # Within a team the id stays taken, for both of them.
        for who in (principal, other):
            with pytest.raises(DuplicateRequestId) as refused:
                request_admit(principal=who, request_id="shared-id", estimated_cost=D("0.1"))
            assert refused.value.code == "duplicate_request_id"

    def test_a_request_id_in_flight_in_one_team_is_free_in_another(self, make_api_key,
                                                                   principal):
        other = principal_of(make_api_key(team="team-b", user="bob").api_key)
        mine = request_admit(principal=principal, request_id="both", estimated_cost=D("0.1"))
        theirs = request_admit(principal=other, request_id="both", estimated_cost=D("0.1"))
        # Settling one team's request releases its own reservation only.
        request_settle(admission=theirs, entry=entry(other, "both", "0.1"))
        assert list(BudgetReservation.objects.values_list("team_id", flat=True)) == [
            principal.team_id]
        request_settle(admission=mine, entry=entry(principal, "both", "0.1"))
        assert not BudgetReservation.objects.exists()
        assert UsageRecord.objects.filter(request_id="both").count() == 2

    def test_admission_queries_do_not_grow_with_other_budgets(
        self, api_key, make_api_key, principal
    ):
        budget_set(scope=BudgetScope.TEAM, team=api_key.api_key.team, daily_limit=D("100"))
        request_admit(principal=principal, request_id="warm", estimated_cost=D("0.01"))

        def admit_queries(request_id: str) -> int:
            with CaptureQueriesContext(connection) as ctx:
                request_admit(principal=principal, request_id=request_id,
                              estimated_cost=D("0.01"))
            return len(ctx.captured_queries)

        before = admit_queries("q1")
        for i in range(30):
            issued = make_api_key(team=f"t{i}", user=f"u{i}")
            budget_set(scope=BudgetScope.KEY, api_key=issued.api_key, daily_limit=D("1"))
            budget_set(scope=BudgetScope.TEAM, team=issued.api_key.team, daily_limit=D("1"))
        assert admit_queries("q2") == before
        assert before <= 7  # savepoint pair, budgets, counters, update, reservation claim


    @pytest.mark.skipif(connection.vendor != "postgresql", reason="the PostgreSQL statement")
    def test_on_postgresql_one_statement_locks_checks_reserves_and_claims(
        self, api_key, principal
    ):
        b = budget_set(scope=BudgetScope.KEY, api_key=api_key.api_key, daily_limit=D("1"),
                       monthly_limit=D("5"))
        request_admit(principal=principal, request_id="warm", estimated_cost=D("0.1"))
        with CaptureQueriesContext(connection) as ctx:
            request_admit(principal=principal, request_id="one", estimated_cost=D("0.2"))
        locking = [q["sql"] for q in ctx.captured_queries if "FOR UPDATE" in q["sql"]]
        assert len(locking) == 1
        assert "INSERT INTO" in locking[0] and "UPDATE" in locking[0]
        assert counter(b).reserved == D("0.3")
        assert BudgetReservation.objects.get(request_id="one").amount == D("0.2")
        # Refused: nothing reserved, nothing claimed, and the error names the limit.
        with pytest.raises(BudgetExceeded) as refused:
            request_admit(principal=principal, request_id="big", estimated_cost=D("0.8"))
        assert refused.value.extra["remaining"] == "0.700000000000"
        assert counter(b).reserved == D("0.3")
        assert not BudgetReservation.objects.filter(request_id="big").exists()

    @pytest.mark.skipif(connection.vendor != "postgresql", reason="the PostgreSQL query")
    def test_on_postgresql_one_query_finds_the_budgets_and_their_current_counters(
        self, api_key, principal, make_api_key
    ):
        from budgets import pg_admission

        other = make_api_key(team="team-b", user="bob")
        mine = [
            budget_set(scope=BudgetScope.KEY, api_key=api_key.api_key, daily_limit=D("5"),
                       monthly_limit=D("9")),
            budget_set(scope=BudgetScope.USER, user=api_key.api_key.user, total_limit=D("50")),
            budget_set(scope=BudgetScope.TEAM, team=api_key.api_key.team, daily_limit=D("100")),
            budget_set(scope=BudgetScope.GLOBAL, monthly_limit=D("1000")),
        ]
        budget_set(scope=BudgetScope.KEY, api_key=other.api_key, daily_limit=D("1"))
        now = datetime.now(UTC)
        request_admit(principal=principal, request_id="seed", estimated_cost=D("0.1"), now=now)
        # Last month's counter of the same budget is not current: it must not be returned.
        BudgetCounter.objects.create(budget=mine[0], period="month",
                                     period_start=datetime(2001, 1, 1, tzinfo=UTC))
        budgets, counters = pg_admission.applicable(principal=principal, now=now)
        assert sorted(b.pk for b in budgets) == sorted(
            Budget.objects.for_principal(principal).values_list("pk", flat=True))
        assert sorted(b.pk for b in budgets) == sorted(b.pk for b in mine)
        current = {(c.budget_id, c.period, c.period_start): c.pk for c in BudgetCounter.objects
                   .filter(budget__in=mine).exclude(period_start__year=2001)}
        assert {key: c.pk for key, c in counters.items()} == current
        assert len(current) == 5  # key day + month, user total, team day, global month
