"""The inline budget forms offered to the Team and ApiKey admin pages (llmops/admin.py)."""

from decimal import Decimal

import pytest
from django.contrib import admin
from django.test import RequestFactory

from budgets.admin import ApiKeyBudgetInline, TeamBudgetInline
from budgets.models import Budget, BudgetCounter
from llmops.models import ApiKey, Team
from tests.unit.budgets.factories import spend

pytestmark = pytest.mark.django_db


def submit(inline_class, parent_model, parent, admin_user, **fields):
    request = RequestFactory().post("/")
    request.user = admin_user
    inline = inline_class(parent_model, admin.site)
    formset_class = inline.get_formset(request, parent)
    prefix = formset_class.get_default_prefix()
    data = {f"{prefix}-TOTAL_FORMS": "1", f"{prefix}-INITIAL_FORMS": "0",
            f"{prefix}-MIN_NUM_FORMS": "0", f"{prefix}-MAX_NUM_FORMS": "1",
            f"{prefix}-0-alert_threshold": "0.8", f"{prefix}-0-action": "block",
            f"{prefix}-0-is_active": "on"}
    data.update({f"{prefix}-0-{name}": value for name, value in fields.items()})
    formset = formset_class(data, instance=parent, prefix=prefix)
    assert formset.is_valid(), formset.errors
    return formset.save()


def test_team_inline_creates_a_team_budget_seeded_from_the_ledger(api_key, principal,
                                                                   admin_user):
    spend(principal, "a", "1", "0.25")
    team = Team.objects.get()
    [budget] = submit(TeamBudgetInline, Team, team, admin_user, daily_limit="3")
    assert (budget.scope, budget.team_id, budget.daily_limit) == ("team", team.pk, Decimal(3))
    assert BudgetCounter.objects.get(budget=budget).spent == Decimal("0.25")


def test_key_inline_creates_a_key_budget(api_key, admin_user):
    key = ApiKey.objects.get()
    submit(ApiKeyBudgetInline, ApiKey, key, admin_user, monthly_limit="12.5")
    budget = Budget.objects.get()
    assert (budget.scope, budget.api_key_id, budget.monthly_limit) == ("key", key.pk,
                                                                      Decimal("12.5"))
