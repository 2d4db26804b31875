"""Reconcile (budgets/services/reconcile.py): counters checked against the ledger, drift fixed."""

from decimal import Decimal

import pytest

from budgets.models import BudgetCounter, BudgetScope
from budgets.services import budget_counters_reconcile, budget_set, request_admit
from tests.unit.budgets.factories import counter, spend

pytestmark = pytest.mark.django_db

D = Decimal


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
