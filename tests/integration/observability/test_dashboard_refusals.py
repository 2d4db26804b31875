"""The built-in dashboard shows refused requests: budget refusals and rate-limit refusals."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from budgets.errors import BudgetExceeded
from budgets.models import BudgetScope
from budgets.services import budget_set, request_admit
from llmops.models import RateLimitRefusal
from llmops.observability import refusals, selectors
from tests.unit.budgets.factories import principal_of

pytestmark = pytest.mark.django_db

D = Decimal


@pytest.fixture
def refused(make_api_key, monkeypatch):
    """Two keys: acme's budget refused three requests today, globex's rate limit 5 + 2."""
    monkeypatch.setattr(refusals, "_tally", refusals._Tally())
    acme, globex = make_api_key(team="acme", user="alice"), make_api_key(team="globex", user="bob")
    budget_set(scope=BudgetScope.KEY, api_key=acme.api_key, daily_limit=D("0.01"))
    for i in range(3):
        with pytest.raises(BudgetExceeded):
            request_admit(principal=principal_of(acme.api_key), request_id=f"big{i}",
                          estimated_cost=D("0.02"))
    today = timezone.now().date()
    RateLimitRefusal.objects.create(api_key=globex.api_key, day=today, refused=5)
    RateLimitRefusal.objects.create(api_key=globex.api_key, day=today - timedelta(days=1),
                                    refused=2)
    RateLimitRefusal.objects.create(api_key=acme.api_key, day=today - timedelta(days=30),
                                    refused=9)  # outside a 7-day window
    return acme, globex


def test_selectors_count_the_window_in_one_query_each(refused):
    acme, globex = refused
    since = timezone.now() - timedelta(days=7)
    with CaptureQueriesContext(connection) as ctx:
        totals = selectors.refusal_totals(since=since)
        budgets = selectors.most_refused_budgets(since=since, limit=5)
        keys = selectors.most_rate_limited_keys(since=since, limit=5)
    assert len(ctx.captured_queries) == 4  # two aggregates, the top budgets, the top keys
    assert totals == {"budget": 3, "budget_amount": D("0.06"), "rate_limit": 7, "total": 10}
    (row,) = budgets
    assert row.target == f"key {acme.api_key.prefix}" and row.period == "day"
    assert (row.refused, row.refused_amount) == (3, D("0.06"))
    assert keys == [{"prefix": globex.api_key.prefix, "name": "", "team_name": "globex",
                     "refused": 7}]


def test_a_quiet_window_shows_nothing(refused):
    later = timezone.now() + timedelta(minutes=1)
    assert selectors.refusal_totals(since=later)["budget"] == 0
    assert selectors.most_refused_budgets(since=later, limit=5) == []


def test_the_page_shows_the_refused_count_and_both_tables(staff_client, refused):
    acme, globex = refused
    response = staff_client.get("/dashboard/?days=7")
    assert response.status_code == 200
    page = response.content.decode()
    assert '<span class="value" id="kpi-refused">3 / 7</span>' in page
    assert f"<td>key {acme.api_key.prefix}</td><td>day from " in page
    assert "<td>0.060000</td>" in page
    assert f"<code>llmops-{globex.api_key.prefix}.…</code></td><td></td><td>globex</td>" \
           f"<td>7</td>" in page
    assert acme.key not in page and globex.key not in page


def test_the_page_writes_this_processs_pending_rate_refusals_first(staff_client, make_api_key,
                                                                   monkeypatch, settings):
    monkeypatch.setattr(refusals, "_tally", refusals._Tally())
    settings.RATE_LIMIT_REFUSALS_FLUSH_SECONDS = 3600
    issued = make_api_key(team="initech", user="peter")
    refusals._tally.add(issued.api_key.pk, timezone.now().date())
    page = staff_client.get("/dashboard/?days=1").content.decode()
    assert '<span class="value" id="kpi-refused">0 / 1</span>' in page
