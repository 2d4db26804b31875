"""Counter rows: created once per budget period, locked and written back exactly."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from budgets.models import BudgetCounter, BudgetScope
from budgets.selectors import period_limits
from budgets.services import budget_set
from budgets.services.counters import counters_find, counters_write

pytestmark = pytest.mark.django_db

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
