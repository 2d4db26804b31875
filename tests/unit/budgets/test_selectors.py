"""Budget selectors (budgets/selectors.py): what the caller has left."""

from decimal import Decimal

import pytest

from budgets import selectors
from budgets.models import BudgetAction, BudgetScope
from budgets.services import budget_set, request_admit
from tests.unit.budgets.factories import spend

pytestmark = pytest.mark.django_db

D = Decimal


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
