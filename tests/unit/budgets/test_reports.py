"""What the budget commands print: the spend table, a budget's settings, counter drift."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from budgets.models import Budget, BudgetAction, BudgetScope
from budgets.reports import SPEND_HEADER, budget_as_dict, budget_line, spend_table
from budgets.selectors import ScopeSpend
from budgets.services import Drift

D = Decimal


def row(scope: str, name: str, spent: str, limit: str | None = None, **fields) -> ScopeSpend:
    return ScopeSpend(scope=scope, name=name, requests=fields.pop("requests", 1), spent=D(spent),
                      saved=D(fields.pop("saved", "0")), cache_hits=0,
                      limit=None if limit is None else D(limit), **fields)


class TestSpendTable:
    def test_columns_line_up_names_left_numbers_right(self):
        lines = spend_table([row("team", "team-a", "1.5", "10", requests=12),
                             row("key", "k1", "0.00000032", refused=3,
                                 refused_amount=D("0.25"))], period="month")
        assert lines[0].split() == ["SCOPE", "NAME", "REQUESTS", "SPENT", "SAVED", "HITS",
                                    "LIMIT", "USED", "REFUSED", "REFUSED", "AMOUNT"]
        team, key = lines[1], lines[2]
        assert team.split() == ["team", "team-a", "12", "$1.500000", "$0.000000", "0",
                                "$10.00", "15.0%", "0", "0.000000"]
        assert key.split() == ["key", "k1", "1", "$0.00000032", "$0.000000", "0", "-", "-",
                               "3", "0.250000"]
        # Names start in one column; numbers end in one column.
        assert team.index("team-a") == key.index("k1") == lines[0].index("NAME")
        spent_end = lines[0].index("SPENT") + len("SPENT")
        assert team.index("$1.500000") + len("$1.500000") == spent_end
        assert key.index("$0.00000032") + len("$0.00000032") == spent_end

    def test_an_empty_report_says_so(self):
        assert spend_table([], period="day") == ["  ".join(SPEND_HEADER),
                                                 "(no spend and no budgets this day)"]


@pytest.mark.django_db
class TestBudget:
    def test_settings_as_json_and_as_one_line(self):
        budget = Budget.objects.create(scope=BudgetScope.GLOBAL, daily_limit=D("0.0005"),
                                       total_limit=D("12"), action=BudgetAction.ALERT_ONLY,
                                       alert_threshold=D("0.9"), is_active=False)
        data = budget_as_dict(budget)
        assert (data["daily"], data["monthly"], data["total"]) == (
            "0.000500000000", None, "12.000000000000")
        assert (data["action"], data["alert_threshold"], data["active"]) == (
            "alert_only", "0.9", False)
        line = budget_line(budget)
        assert line.startswith(f"{budget}: daily $0.0005, total $12.00; alert at 90%; ")
        assert line.endswith(" (disabled)")

    def test_a_budget_without_limits(self):
        budget = Budget.objects.create(scope=BudgetScope.GLOBAL)
        assert ": no limits; " in budget_line(budget)


def test_a_drift_reads_as_what_was_stored_and_what_is_true():
    drift = Drift(counter_id=1, budget="Team budget: team-a", period="day",
                  period_start=datetime(2026, 3, 14, tzinfo=UTC), stored_spent=D("9"),
                  ledger_spent=D("1.5"), stored_reserved=D("0"), held_reserved=D("0.2"))
    assert str(drift) == ("Team budget: team-a day 2026-03-14: spent 9 → 1.5, reserved 0 → 0.2")
