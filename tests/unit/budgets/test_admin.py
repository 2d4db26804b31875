"""Budget and ledger admin: utilization bars, read-only ledger, filters, CSV, team summary."""

from decimal import Decimal

import pytest
from django.urls import reverse

from budgets.admin import budget_admin_link
from budgets.models import Budget, BudgetScope, UsageRecord
from budgets.services import budget_set
from tests.unit.budgets.factories import spend

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(admin_client, api_key, principal):
    budget_set(scope=BudgetScope.TEAM, team=api_key.api_key.team, daily_limit=Decimal("2"))
    spend(principal, "req-1", "1", "0.5")
    spend(principal, "req-2", "1", "1")
    return admin_client


def test_budget_changelist_shows_utilization_bars(staff, django_assert_max_num_queries):
    with django_assert_max_num_queries(12):
        response = staff.get(reverse("admin:budgets_budget_changelist"))
    assert response.status_code == 200
    assert "75% of $2.00" in response.content.decode()
    assert staff.get(reverse("admin:budgets_budget_changelist") + "?scope=team").status_code == 200


def test_a_limit_below_a_cent_shows_its_digits(admin_client, api_key, principal):
    budget_set(scope=BudgetScope.TEAM, team=api_key.api_key.team, daily_limit=Decimal("0.0005"))
    spend(principal, "tiny", "0.0005", "0.0004166")
    page = admin_client.get(reverse("admin:budgets_budget_changelist")).content.decode()
    assert "83% of $0.0005<" in page
    assert 'title="$0.0004 spent + $0.0000 reserved of $0.0005"' in page
    assert "$0.00<" not in page


def test_spend_below_the_bar_precision_keeps_its_digits(admin_client, api_key, principal):
    budget_set(scope=BudgetScope.KEY, api_key=api_key.api_key, daily_limit=Decimal("10"))
    spend(principal, "tiny", "0.001", "0.00000032")
    page = admin_client.get(reverse("admin:budgets_budget_changelist")).content.decode()
    assert 'title="$0.00000032 spent + $0.0000 reserved of $10.00"' in page


def test_budget_change_and_add_pages(staff, api_key):
    budget = Budget.objects.get()
    assert staff.get(reverse("admin:budgets_budget_change", args=[budget.pk])).status_code == 200
    add = reverse("admin:budgets_budget_add") + f"?scope=key&api_key={api_key.api_key.pk}"
    assert staff.get(add).status_code == 200
    assert "edit budget" in budget_admin_link(api_key.api_key.team)
    assert "create budget" in budget_admin_link(api_key.api_key)


def test_ledger_is_read_only_filterable_and_searchable(staff, api_key):
    url = reverse("admin:budgets_usagerecord_changelist")
    page = staff.get(url).content.decode()
    assert "req-1" in page and "Export CSV" in page
    assert "req-2" not in staff.get(url, {"q": "req-1"}).content.decode()
    filters = {"team__id__exact": api_key.api_key.team_id, "status__exact": "ok",
               "cache_status__exact": "miss", "served_model": "m",
               "created_at__gte": "2000-01-01 00:00:00+00:00",
               "created_at__lt": "2100-01-01 00:00:00+00:00"}
    assert "req-1" in staff.get(url, filters).content.decode()
    assert staff.get(reverse("admin:budgets_usagerecord_add")).status_code == 403


def test_csv_export_of_current_filters(staff):
    response = staff.get(reverse("admin:budgets_usagerecord_export"), {"q": "req-2"})
    body = b"".join(response.streaming_content).decode()
    lines = body.strip().splitlines()
    assert lines[0].startswith("request_id,created_at")
    assert len(lines) == 2 and lines[1].startswith("req-2,")


def test_csv_export_has_every_ledger_column(staff):
    response = staff.get(reverse("admin:budgets_usagerecord_export"), {"q": "req-1"})
    header = b"".join(response.streaming_content).decode().splitlines()[0].split(",")
    columns = {f.attname for f in UsageRecord._meta.concrete_fields} - {"id"}
    assert set(header) == columns and "endpoint" in header


def test_team_summary(staff):
    response = staff.get(reverse("admin:budgets_usagerecord_team_summary"), {"days": 7})
    page = response.content.decode()
    assert response.status_code == 200 and "team-a" in page and "$1.500000" in page


def test_team_summary_keeps_the_digits_of_small_spend(admin_client, principal):
    spend(principal, "tiny", "0.001", "0.00000032")
    page = admin_client.get(reverse("admin:budgets_usagerecord_team_summary")).content.decode()
    assert "<td>$0.00000032</td>" in page and "<th>$0.00000032</th>" in page
