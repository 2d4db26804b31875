"""Admission, settlement, defaults, alerts, roll-over and the sweep (budgets/services/)."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.core import mail
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from budgets import selectors
from budgets.errors import BudgetExceeded, DuplicateRequestId
from budgets.models import (
    Budget,
    BudgetAction,
    BudgetAlert,
    BudgetCounter,
    BudgetReservation,
    BudgetScope,
    UsageRecord,
)
from budgets.periods import period_start
from budgets.services import (
    UsageEntry,
    budget_counters_reconcile,
    budget_set,
    request_admit,
    request_settle,
    reservations_release_stale,
)
from tests.unit.budgets.factories import principal_of, spend

pytestmark = pytest.mark.django_db

D = Decimal


def counter(budget: Budget, period: str = "day", start: datetime | None = None) -> BudgetCounter:
    """Return the budget's counter for a period: the current one, or the one starting at `start`."""
    start = start or period_start(period, timezone.now())
    return BudgetCounter.objects.get(budget=budget, period=period, period_start=start)


def entry(principal, request_id: str, cost: str = "0", **kwargs) -> UsageEntry:
    return UsageEntry(request_id=request_id, principal=principal, requested_model="m",
                      served_model="m", cost=D(cost), **kwargs)


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


class TestSettlement:
    def test_settle_statements_do_not_grow_with_budgets(self, api_key, principal):
        """Common path: reservation deleted, ledger row, counters locked, counters updated (plus
        the savepoint pair); no look for a sweep's provisional row when the reservation was
        still there."""
        budget_set(scope=BudgetScope.KEY, api_key=api_key.api_key, daily_limit=D("5"),
                   monthly_limit=D("9"))
        budget_set(scope=BudgetScope.TEAM, team=api_key.api_key.team, daily_limit=D("100"))
        admission = request_admit(principal=principal, request_id="s1", estimated_cost=D("0.1"))
        with CaptureQueriesContext(connection) as ctx:
            request_settle(admission=admission, entry=entry(principal, "s1", "0.05"))
        statements = [q["sql"] for q in ctx.captured_queries
                      if "SAVEPOINT" not in q["sql"].upper()]
        # PostgreSQL: one statement (budgets/pg_settlement.py); SQLite: four in a transaction.
        assert len(statements) == (1 if connection.vendor == "postgresql" else 4), statements
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


class TestDefaultBudget:
    def test_unset_defaults_mean_unlimited(self, settings, principal):
        settings.DEFAULT_DAILY_BUDGET = None
        settings.DEFAULT_MONTHLY_BUDGET = None
        request_admit(principal=principal, request_id="r", estimated_cost=D("1000"))
        assert not Budget.objects.exists()

    def test_defaults_apply_to_keys_without_a_budget(self, settings, principal):
        settings.DEFAULT_DAILY_BUDGET = D("1")
        settings.DEFAULT_MONTHLY_BUDGET = D("20")
        assert selectors.budget_remaining(principal=principal) == D("1")
        spend(principal, "a", "0.8", "0.8")
        budget = Budget.objects.get(scope=BudgetScope.KEY)
        assert budget.uses_defaults
        with pytest.raises(BudgetExceeded) as exc:
            request_admit(principal=principal, request_id="b", estimated_cost=D("0.3"))
        assert exc.value.extra["period"] == "day"
        # The setting is read live: raising it lets the request through, no migration needed.
        settings.DEFAULT_DAILY_BUDGET = D("2")
        request_admit(principal=principal, request_id="c", estimated_cost=D("0.3"))

    def test_own_budget_replaces_defaults_and_keeps_spend(self, settings, api_key, principal):
        settings.DEFAULT_DAILY_BUDGET = D("1")
        spend(principal, "a", "0.8", "0.8")
        budget = budget_set(scope=BudgetScope.KEY, api_key=api_key.api_key, daily_limit=D("5"))
        assert not budget.uses_defaults
        assert budget.monthly_limit is None  # DEFAULT_MONTHLY_BUDGET was unset
        assert selectors.budget_remaining(principal=principal) == D("4.2")


class TestPeriodRollover:
    def test_requests_around_midnight_and_month_end_land_in_their_periods(
        self, api_key, principal
    ):
        b = budget_set(scope=BudgetScope.KEY, api_key=api_key.api_key, daily_limit=D("1"),
                       monthly_limit=D("100"))
        before = datetime(2026, 11, 30, 23, 59, 59, 999999, tzinfo=UTC)
        after = datetime(2026, 12, 1, 0, 0, 0, tzinfo=UTC)
        spend(principal, "before", "1", "1", now=before)
        with pytest.raises(BudgetExceeded):
            request_admit(principal=principal, request_id="x", estimated_cost=D("0.1"),
                          now=before)
        # No job ran: the new day (and month) simply has fresh counter rows.
        spend(principal, "after", "1", "0.4", now=after)
        days = {c.period_start: c.spent for c in b.counters.filter(period="day")}
        months = {c.period_start: c.spent for c in b.counters.filter(period="month")}
        assert days[datetime(2026, 11, 30, tzinfo=UTC)] == D(1)
        assert days[datetime(2026, 12, 1, tzinfo=UTC)] == D("0.4")
        assert months[datetime(2026, 11, 1, tzinfo=UTC)] == D(1)
        assert months[datetime(2026, 12, 1, tzinfo=UTC)] == D("0.4")
        assert UsageRecord.objects.get(request_id="before").created_at == before
        assert UsageRecord.objects.get(request_id="after").created_at == after

    def test_a_request_admitted_before_midnight_is_charged_to_its_admission_day(
        self, api_key, principal
    ):
        b = budget_set(scope=BudgetScope.KEY, api_key=api_key.api_key, daily_limit=D("1"))
        before = datetime(2026, 11, 25, 23, 59, 59, tzinfo=UTC)
        admission = request_admit(principal=principal, request_id="r", estimated_cost=D("0.5"),
                                  now=before)
        request_settle(admission=admission, entry=entry(principal, "r", "0.3"))
        c = BudgetCounter.objects.get(budget=b, period_start=datetime(2026, 11, 25, tzinfo=UTC))
        assert (c.spent, c.reserved) == (D("0.3"), 0)
        assert UsageRecord.objects.get(request_id="r").created_at == before


class TestSweep:
    def test_stale_reservation_is_released_and_a_late_settle_only_charges(
        self, api_key, principal
    ):
        b = budget_set(scope=BudgetScope.KEY, api_key=api_key.api_key, daily_limit=D("1"))
        t0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
        dead = request_admit(principal=principal, request_id="dead", estimated_cost=D("0.7"),
                             now=t0)
        request_admit(principal=principal, request_id="fresh", estimated_cost=D("0.2"),
                      now=t0 + timedelta(minutes=15))
        released = reservations_release_stale(older_than_seconds=600,
                                              now=t0 + timedelta(minutes=20))
        assert released == 1
        assert list(BudgetReservation.objects.values_list("request_id", flat=True)) == ["fresh"]
        # budget_set seeded today's counter too; t0's day is the one these requests charge.
        day = counter(b, start=datetime(2026, 11, 25, tzinfo=UTC))
        # The dead request is charged its reservation, the most it could have cost.
        assert (day.spent, day.reserved) == (D("0.7"), D("0.2"))
        abandoned = UsageRecord.objects.get(request_id="dead")
        assert (abandoned.error_kind, abandoned.cost) == ("abandoned", D("0.7"))
        # The request presumed dead settles after all: its real cost replaces that charge, and
        # it is not released a second time.
        request_settle(admission=dead, entry=entry(principal, "dead", "0.1"))
        day.refresh_from_db()
        assert (day.spent, day.reserved) == (D("0.1"), D("0.2"))
        # Its one ledger row is now the real one, replacing the sweep's provisional row.
        row = UsageRecord.objects.get(request_id="dead")
        assert row.error_kind == "" and row.cost == D("0.1")

    def test_a_live_holder_keeps_its_reservations_however_old(self, api_key, principal):
        from budgets.services import reservation_holder_heartbeat

        budget_set(scope=BudgetScope.KEY, api_key=api_key.api_key, daily_limit=D("5"))
        t0 = timezone.now() - timedelta(hours=3)
        for name in ("alive", "dead"):
            reservation_holder_heartbeat(holder_id=name, now=t0)
            request_admit(principal=principal, request_id=f"{name}-req", estimated_cost=D("1"),
                          holder=name, now=t0)
        now = t0 + timedelta(hours=3)
        reservation_holder_heartbeat(holder_id="alive", now=now - timedelta(seconds=5))
        # A long stream of a live process: not swept, whatever its age.
        released = reservations_release_stale(holder_timeout_seconds=30, now=now)
        assert released == 1
        assert list(BudgetReservation.objects.values_list("request_id", flat=True)) == [
            "alive-req"]
        dead = UsageRecord.objects.get(request_id="dead-req")
        assert (dead.error_kind, dead.cost) == ("abandoned", D("1"))

    def test_a_dead_holder_is_given_the_holder_timeout_before_its_money_moves(
            self, api_key, principal):
        from budgets.services import reservation_holder_heartbeat

        now = timezone.now()
        reservation_holder_heartbeat(holder_id="h", now=now - timedelta(seconds=20))
        request_admit(principal=principal, request_id="r", estimated_cost=D("1"), holder="h",
                      now=now - timedelta(seconds=20))
        assert reservations_release_stale(holder_timeout_seconds=30, now=now) == 0
        assert reservations_release_stale(
            holder_timeout_seconds=30, now=now + timedelta(seconds=11)) == 1

    def test_a_holder_that_never_heartbeat_counts_as_dead(self, api_key, principal):
        now = timezone.now()
        request_admit(principal=principal, request_id="r", estimated_cost=D("1"),
                      holder="never-seen", now=now - timedelta(seconds=31))
        assert reservations_release_stale(holder_timeout_seconds=30, now=now) == 1

    def test_heartbeat_upserts_one_row_per_holder(self):
        from budgets.models import ReservationHolder
        from budgets.services import reservation_holder_heartbeat

        t0 = timezone.now()
        reservation_holder_heartbeat(holder_id="h", hostname="box", pid=7, now=t0)
        reservation_holder_heartbeat(holder_id="h", hostname="box", pid=7,
                                     now=t0 + timedelta(seconds=10))
        row = ReservationHolder.objects.get()
        assert (row.pk, row.pid, row.started_at, row.seen_at) == (
            "h", 7, t0, t0 + timedelta(seconds=10))

    def test_the_sweep_writes_the_row_of_the_team_that_reserved(self, make_api_key,
                                                                  principal):
        other = principal_of(make_api_key(team="team-b", user="bob").api_key)
        t0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
        spend(principal, "gone", "0.2", "0.1")
        dead = request_admit(principal=other, request_id="gone", estimated_cost=D("0.3"), now=t0)
        assert reservations_release_stale(older_than_seconds=600,
                                          now=t0 + timedelta(minutes=20)) == 1
        abandoned = UsageRecord.objects.get(request_id="gone", team_id=other.team_id)
        assert abandoned.error_kind == "abandoned"
        assert UsageRecord.objects.get(request_id="gone", team_id=principal.team_id).cost == \
            D("0.1")
        # The late settle replaces its own team's provisional row, never the other team's row.
        request_settle(admission=dead, entry=entry(other, "gone", "0.2"))
        rows = dict(UsageRecord.objects.filter(request_id="gone")
                    .values_list("team_id", "error_kind"))
        assert rows == {principal.team_id: "", other.team_id: ""}

    def test_the_sweep_is_a_beat_task(self, settings, principal):
        from budgets import tasks

        schedule = settings.CELERY_BEAT_SCHEDULE["budgets-release-stale-reservations"]
        assert schedule["task"] == tasks.reservations_release_stale.name
        request_admit(principal=principal, request_id="r", estimated_cost=D("1"),
                      now=datetime(2020, 1, 1, tzinfo=UTC))
        assert tasks.reservations_release_stale.delay().get() == 1


@pytest.fixture
def committed(django_capture_on_commit_callbacks):
    """Return run(fn, ...): call fn, then run its on_commit callbacks (alert delivery), as a
    real commit would; the test's own transaction never commits."""

    def run(fn, *args, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return fn(*args, **kwargs)

    return run


class TestAlert:
    def test_threshold_and_limit_alerts_are_sent_once_per_period(
        self, api_key, principal, monkeypatch, committed
    ):
        posted = []

        class Response:
            def raise_for_status(self):
                return None

        monkeypatch.setattr("httpx.post", lambda url, json, timeout: posted.append(json)
                            or Response())
        budget_set(scope=BudgetScope.TEAM, team=api_key.api_key.team, daily_limit=D("1"),
                   alert_threshold=D("0.5"), notify_email="ops@example.com",
                   notify_webhook_url="https://hooks.example.com/budget")
        committed(spend, principal, "a", "0.4", "0.4")
        assert posted == [] and mail.outbox == []
        committed(spend, principal, "b", "0.2", "0.2")  # 0.6 ≥ 0.5 → threshold
        committed(spend, principal, "c", "0.1", "0.1")  # still over threshold: no second alert
        assert [p["event"] for p in posted] == ["budget.threshold"]
        assert posted[0]["spent"] == "0.600000000000" and posted[0]["limit"] == "1.000000000000"
        assert len(mail.outbox) == 1 and "ops@example.com" in mail.outbox[0].to
        committed(spend, principal, "d", "0.3", "0.3")  # exactly at the limit
        for i in range(3):
            with pytest.raises(BudgetExceeded):
                committed(request_admit, principal=principal, request_id=f"x{i}",
                          estimated_cost=D("0.1"))
        assert [p["event"] for p in posted] == ["budget.threshold", "budget.limit"]
        assert BudgetAlert.objects.filter(delivered_at__isnull=False).count() == 2

    def test_an_alert_on_a_tiny_limit_names_its_amounts(self, api_key, principal):
        from budgets.services import alert_payload

        budget_set(scope=BudgetScope.KEY, api_key=api_key.api_key, daily_limit=D("0.0000005"))
        spend(principal, "a", "0.0000005", "0.0000004")
        alert = BudgetAlert.objects.get(kind="threshold")
        assert alert_payload(alert=alert)["message"].endswith(": $0.0000004 of $0.0000005.")
        assert str(UsageRecord.objects.get(request_id="a")).endswith(" m $0.0000004")
        reservation = request_admit(principal=principal, request_id="b", estimated_cost=D(0))
        assert str(BudgetReservation.objects.get(request_id=reservation.request_id)) == "b: $0.00"

    def test_refusal_sends_the_limit_alert_once(self, api_key, principal, committed):
        budget_set(scope=BudgetScope.KEY, api_key=api_key.api_key, daily_limit=D("1"),
                   notify_email="ops@example.com")
        for i in range(3):
            with pytest.raises(BudgetExceeded):
                committed(request_admit, principal=principal, request_id=f"x{i}",
                          estimated_cost=D("2"))
        assert BudgetAlert.objects.filter(kind="limit").count() == 1
        assert len(mail.outbox) == 1

    def test_failed_delivery_is_recorded_not_raised(
        self, api_key, principal, monkeypatch, committed
    ):
        def boom(*args, **kwargs):
            raise OSError("webhook down")

        monkeypatch.setattr("httpx.post", boom)
        budget_set(scope=BudgetScope.KEY, api_key=api_key.api_key, daily_limit=D("1"),
                   notify_webhook_url="https://hooks.example.com/x")
        committed(spend, principal, "a", "1", "0.9")  # the settle itself succeeds
        alert = BudgetAlert.objects.get()
        assert alert.delivered_at is None and "webhook down" in alert.last_error
        assert alert.attempts >= 1

    def test_undelivered_alerts_are_sent_again_once_the_webhook_is_back(
        self, api_key, principal, monkeypatch, committed
    ):
        from budgets.services import alerts_redeliver

        def boom(*args, **kwargs):
            raise OSError("webhook down")

        monkeypatch.setattr("httpx.post", boom)
        budget_set(scope=BudgetScope.KEY, api_key=api_key.api_key, daily_limit=D("1"),
                   notify_webhook_url="https://hooks.example.com/x")
        committed(spend, principal, "a", "1", "0.9")
        alert = BudgetAlert.objects.get()
        assert alert.delivered_at is None
        later = alert.created_at + timedelta(minutes=5)
        assert alerts_redeliver(now=alert.created_at) == 0  # too fresh: its own retry is due

        posted = []

        class Response:
            def raise_for_status(self):
                return None

        monkeypatch.setattr("httpx.post", lambda url, json, timeout: posted.append(json)
                            or Response())
        assert alerts_redeliver(now=later) == 1
        alert.refresh_from_db()
        assert alert.delivered_at is not None and len(posted) == 1
        assert alerts_redeliver(now=later) == 0  # delivered alerts are left alone


class TestReconcile:
    def test_reconcile_reports_and_fixes_drift(self, api_key, principal):
        b = budget_set(scope=BudgetScope.TEAM, team=api_key.api_key.team, daily_limit=D("5"))
        spend(principal, "a", "1", "0.7")
        request_admit(principal=principal, request_id="open", estimated_cost=D("0.3"))
        assert budget_counters_reconcile(fix=False) == []
        BudgetCounter.objects.filter(budget=b).update(spent=D("3"), reserved=D("2"))
        drifts = budget_counters_reconcile(fix=True)
        assert len(drifts) == 1
        assert (drifts[0].ledger_spent, drifts[0].held_reserved) == (D("0.7"), D("0.3"))
        c = counter(b)
        assert (c.spent, c.reserved) == (D("0.7"), D("0.3"))
        assert budget_counters_reconcile(fix=False) == []

    def test_new_budget_starts_from_the_ledger(self, api_key, principal):
        spend(principal, "a", "1", "0.7")
        b = budget_set(scope=BudgetScope.USER, user=api_key.api_key.user, daily_limit=D("1"))
        assert counter(b).spent == D("0.7")
        assert selectors.budget_remaining(principal=principal) == D("0.3")


class TestBudgetRemaining:
    def test_least_remaining_across_blocking_budgets_in_two_queries(
        self, api_key, principal, django_assert_num_queries
    ):
        key = api_key.api_key
        budget_set(scope=BudgetScope.KEY, api_key=key, daily_limit=D("5"), monthly_limit=D("9"))
        budget_set(scope=BudgetScope.TEAM, team=key.team, total_limit=D("3"))
        budget_set(scope=BudgetScope.GLOBAL, daily_limit=D("0.5"),
                   action=BudgetAction.ALERT_ONLY)  # never limits
        spend(principal, "a", "1", "0.75")
        request_admit(principal=principal, request_id="open", estimated_cost=D("0.25"))
        with django_assert_num_queries(2):
            assert selectors.budget_remaining(principal=principal) == D("2")

    def test_never_negative(self, api_key, principal):
        budget_set(scope=BudgetScope.KEY, api_key=api_key.api_key, daily_limit=D("1"),
                   action=BudgetAction.ALERT_ONLY)
        spend(principal, "a", "2", "2")
        budget_set(scope=BudgetScope.KEY, api_key=api_key.api_key, action=BudgetAction.BLOCK)
        assert selectors.budget_remaining(principal=principal) == 0
