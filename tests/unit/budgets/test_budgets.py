"""Budgets (budgets/services/budgets.py): set, seeded from the ledger, and the defaults for keys
without one."""

from decimal import Decimal

import pytest

from budgets import selectors
from budgets.errors import BudgetExceeded
from budgets.models import Budget, BudgetScope
from budgets.services import budget_set, request_admit
from tests.unit.budgets.factories import counter, spend

pytestmark = pytest.mark.django_db

D = Decimal


class TestBudgetSet:
    def test_new_budget_starts_from_the_ledger(self, api_key, principal):
        spend(principal, "a", "1", "0.7")
        b = budget_set(scope=BudgetScope.USER, user=api_key.api_key.user, daily_limit=D("1"))
        assert counter(b).spent == D("0.7")
        assert selectors.budget_remaining(principal=principal) == D("0.3")


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
