"""The built-in dashboard: staff only, linked from the admin index, numbers from the ledger."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from llmops.observability import selectors

pytestmark = pytest.mark.django_db


@pytest.fixture
def traffic(make_api_key, make_usage, simulated_profiles):
    acme = make_api_key(team="acme", user="alice")
    globex = make_api_key(team="globex", user="bob")
    yesterday = timezone.now() - timedelta(days=1)
    make_usage(acme, cost=Decimal("0.010"), served_model="simulated-premium")
    # auto sent 1000+1000 tokens to simulated-efficient; the team's reference model,
    # simulated-premium, would have cost 1000 * 0.0000025 + 1000 * 0.00001 = 0.0125.
    make_usage(acme, cost=Decimal("0.002"), served_model="simulated-efficient",
               requested_model="auto", prompt_tokens=1000, completion_tokens=1000,
               routing_reason="cheapest_capable", reference_model="simulated-premium",
               routing_saved=Decimal("0.0105"), cost_saved=Decimal("0.0105"))
    make_usage(acme, cost=Decimal("0"), cost_saved=Decimal("0.004"),
               cache_saved=Decimal("0.004"), cache_status="hit_exact",
               served_model="simulated-efficient", created_at=yesterday)
    make_usage(globex, cost=Decimal("0.001"), served_model="simulated-standard",
               status="upstream_error", http_status=502)
    # Outside a 7-day window.
    make_usage(globex, cost=Decimal("5"), created_at=timezone.now() - timedelta(days=40))
    return acme, globex


def test_selectors_aggregate_the_window(traffic):
    since = timezone.now() - timedelta(days=7)
    totals = selectors.usage_totals(since=since)
    assert totals["requests"] == 4 and totals["errors"] == 1
    assert totals["cost"] == Decimal("0.013")
    assert totals["hits"] == 1 and totals["misses"] == 3 and totals["hit_rate"] == 0.25
    savings = selectors.dashboard_data(since=since)["savings"]
    assert savings.saved_exact == Decimal("0.004") and savings.saved_semantic == 0
    assert savings.saved_routing == Decimal("0.0125") - Decimal("0.002")
    assert [row["model"] for row in selectors.spend_per_model(since=since)][0] == \
        "simulated-premium"
    assert [row["team_name"] for row in selectors.top_teams(since=since, limit=5)] == \
        ["acme", "globex"]
    per_day = selectors.spend_per_day(since=since)
    assert len(per_day) == 2 and sum(row["saved"] for row in per_day) == Decimal("0.004")
    keys = selectors.top_keys(since=since, limit=1)
    assert keys[0]["prefix"] == traffic[0].api_key.prefix


def test_the_page_shows_live_numbers_to_staff(staff_client, traffic):
    response = staff_client.get("/dashboard/?days=7")
    assert response.status_code == 200
    page = response.content.decode()
    assert '<span class="value" id="kpi-requests">4</span>' in page
    assert '<span class="value" id="kpi-cost">$0.013000</span>' in page
    assert 'id="kpi-hit-rate">25%' in page
    assert '<span class="value" id="kpi-cache-saved">$0.004000</span>' in page
    assert "$0.010500" in page[page.index('id="table-savings"'):]  # routing, in the table
    assert "vendor/chartjs/chart.umd.min.js" in page and "cdn" not in page.lower()
    assert traffic[0].key not in page  # keys appear by prefix only


def test_small_amounts_keep_their_digits(staff_client, make_api_key, make_usage):
    from budgets.services import budget_set

    issued = make_api_key(team="tiny", user="tim")
    budget_set(scope="team", team=issued.api_key.team, daily_limit=Decimal("0.0005"))
    make_usage(issued, cost=Decimal("0.00000032"))
    from budgets.models import BudgetCounter

    BudgetCounter.objects.filter(period="day").update(spent=Decimal("0.0004"))
    page = staff_client.get("/dashboard/?days=7").content.decode()
    assert '<span class="value" id="kpi-cost">$0.00000032</span>' in page
    row = page[page.index('id="table-budgets"'):]
    row = row[:row.index("</table>")]
    assert "<td>$0.000400</td><td>$0.0005</td><td>80%</td>" in row


def test_the_page_is_staff_only(client, django_user_model):
    assert client.get("/dashboard/").status_code == 302
    client.force_login(django_user_model.objects.create_user("joe", password="pw"))
    assert client.get("/dashboard/").status_code == 302


def test_the_admin_index_links_the_dashboard(staff_client, django_user_model):
    django_user_model.objects.filter(username="ops").update(is_superuser=True)
    page = staff_client.get("/admin/").content.decode()
    assert 'href="/dashboard/"' in page
