"""Counter rows (budgets/services/counters.py): created once per budget period, locked and written
back exactly; a request lands in the periods of its admission."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from budgets.errors import BudgetExceeded
from budgets.models import BudgetCounter, BudgetScope, UsageRecord
from budgets.selectors import period_limits
from budgets.services import budget_set, request_admit, request_settle
from budgets.services.counters import counters_find, counters_write
from tests.unit.budgets.factories import entry, spend

pytestmark = pytest.mark.django_db

D = Decimal

NOW = datetime(2026, 3, 14, 9, 30, tzinfo=UTC)


def limits_of(budget):
    return period_limits(budgets=[budget], at=NOW)


class TestCountersFind:
    def test_creates_the_missing_rows_once(self, db):
        budget = budget_set(scope=BudgetScope.GLOBAL, daily_limit=Decimal("1"),
                            monthly_limit=Decimal("10"))
        BudgetCounter.objects.all().delete()
        found = counters_find(limits_of(budget), now=NOW)
        assert {key[1] for key in found} == {"day", "month"}
        assert {c.period_start for c in found.values()} == {
            datetime(2026, 3, 14, tzinfo=UTC), datetime(2026, 3, 1, tzinfo=UTC)}
        again = counters_find(limits_of(budget), now=NOW)
        assert {c.pk for c in again.values()} == {c.pk for c in found.values()}
        assert BudgetCounter.objects.count() == 2

    def test_finds_only_the_limits_asked_for(self, db):
        budget = budget_set(scope=BudgetScope.GLOBAL, daily_limit=Decimal("1"),
                            monthly_limit=Decimal("10"))
        day = [limit for limit in limits_of(budget) if limit.period == "day"]
        assert [key[1] for key in counters_find(day, now=NOW)] == ["day"]


class TestCountersWrite:
    def test_writes_exact_amounts_to_each_row(self, db):
        budget = budget_set(scope=BudgetScope.GLOBAL, daily_limit=Decimal("1"),
                            monthly_limit=Decimal("10"))
        counters = list(counters_find(limits_of(budget), now=NOW).values())
        for i, counter in enumerate(counters):
            counter.reserved = Decimal("0.100000000001") * (i + 1)
            counter.spent = Decimal("0.000000000003")
        counters_write(counters, ["reserved", "spent"])
        stored = {c.pk: (c.reserved, c.spent)
                  for c in BudgetCounter.objects.filter(pk__in=[c.pk for c in counters])}
        assert stored == {c.pk: (c.reserved, c.spent) for c in counters}

    def test_nothing_to_write_is_no_statement(self, django_assert_num_queries):
        with django_assert_num_queries(0):
            counters_write([], ["reserved"])


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
