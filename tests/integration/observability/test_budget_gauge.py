"""llm_budget_utilization_ratio: computed from budget counters, published per team and top N."""

from decimal import Decimal

import pytest
from django.core.cache import cache
from django.test import RequestFactory
from django.utils import timezone

from budgets.models import Budget, BudgetCounter
from budgets.periods import period_start
from llmops.observability.budget_gauge import budget_utilization_compute
from llmops.observability.exposition import metrics_view
from llmops.observability.tasks import budget_utilization_refresh

pytestmark = pytest.mark.django_db


def _counter(budget: Budget, period: str, spent: str) -> BudgetCounter:
    return BudgetCounter.objects.create(budget=budget, period=period,
                                        period_start=period_start(period, timezone.now()),
                                        spent=Decimal(spent))


@pytest.fixture
def budgets(make_api_key):
    key = make_api_key(team="acme", user="alice")
    team_budget = Budget.objects.create(scope="team", team=key.api_key.team,
                                        daily_limit=Decimal("10"), monthly_limit=Decimal("100"))
    _counter(team_budget, "day", "5")
    _counter(team_budget, "month", "20")
    key_budget = Budget.objects.create(scope="key", api_key=key.api_key, daily_limit=Decimal("1"))
    _counter(key_budget, "day", "0.95")
    # Yesterday's counter is not the current period: it must not count.
    BudgetCounter.objects.create(budget=key_budget, period="month",
                                 period_start=period_start("day", timezone.now()).replace(
                                     year=2000), spent=Decimal("99"))
    cache.clear()
    return team_budget, key_budget


def test_team_budgets_by_name_and_every_scope_in_the_top_list(budgets):
    rows = budget_utilization_compute()
    named = {(r.scope, r.budget_type): r.ratio for r in rows if not r.top}
    assert named == {("team:acme", "day"): 0.5, ("team:acme", "month"): 0.2}
    top = [(r.scope_kind, r.budget_type, round(r.ratio, 2)) for r in rows if r.top]
    assert top == [("key", "day", 0.95), ("team", "day", 0.5), ("team", "month", 0.2)]


def test_metrics_publish_the_snapshot_the_beat_task_refreshed(budgets, settings):
    settings.METRICS_TOKEN = ""
    assert budget_utilization_refresh.delay().get() == 5
    body = metrics_view(RequestFactory().get("/metrics")).content.decode()
    assert 'llm_budget_utilization_ratio{budget_type="day",scope="team:acme"} 0.5' in body
    assert ('llm_budget_top_utilization_ratio{budget_type="day",rank="1",scope_kind="key"} 0.95'
            in body)
    # No key prefix, user or id ever becomes a label value.
    assert "alice" not in body and budgets[1].api_key.prefix not in body


def test_a_stale_snapshot_is_recomputed_by_the_scrape(budgets, settings):
    cache.clear()
    settings.METRICS_TOKEN = ""
    body = metrics_view(RequestFactory().get("/metrics")).content.decode()
    assert 'scope="team:acme"' in body
