"""The admin's savings page: staff only, its figures `savings_summary`'s, per team and period."""

import json
import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from budgets.models import UsageRecord
from budgets.rollups import day_start
from llmops.models import Team
from llmops.observability.savings import savings_summary
from tests.integration.observability.test_savings import ledger, ledger_sums  # noqa: F401

pytestmark = pytest.mark.django_db
URL = "/admin/llmops/team/savings/"


def window(days: int):
    start = day_start(timezone.now()) - timedelta(days=days - 1)
    return start, day_start(timezone.now()) + timedelta(days=1)


def chart_data(response) -> dict:
    found = re.search(r'<script id="dashboard-data" type="application/json">(.*?)</script>',
                      response.content.decode(), re.S)
    return json.loads(found.group(1))


def test_staff_see_the_ledgers_savings_by_source_team_and_day(staff_client, ledger):  # noqa: F811
    response = staff_client.get(f"{URL}?days=7")
    assert response.status_code == 200
    since, until = window(7)
    rows = UsageRecord.objects.filter(created_at__gte=since, created_at__lt=until)
    expected = ledger_sums(rows)
    summary = response.context["summary"]
    for name, value in expected.items():
        assert getattr(summary, name) == value, name
    assert summary == savings_summary(since=since, until=until)
    page = response.content.decode()
    assert f'id="kpi-spend">${expected["spend"]:.6f}' in page.replace(",", "")
    assert 'id="kpi-strong-share">50%' in page  # two routed requests, one on a premium model

    teams = {row.team_name: row.summary for row in response.context["per_team"]}
    assert set(teams) == {"acme", "globex"}
    for name, team_summary in teams.items():
        team_id = Team.objects.get(name=name).pk
        assert team_summary == savings_summary(since=since, until=until, team_id=team_id)
        assert team_summary.spend == sum(
            (r.cost for r in rows if r.team_id == team_id), Decimal(0))

    periods = list(response.context["periods"])
    assert len(periods) == 7 and response.context["period_days"] == 1
    assert sum((p.summary.spend for p in periods), Decimal(0)) == expected["spend"]
    assert sum((p.summary.saved_total for p in periods), Decimal(0)) == expected["saved_total"]

    charts = chart_data(response)
    assert charts["savings"]["realized"] == [float(expected["saved_exact"]),
                                             float(expected["saved_semantic"]),
                                             float(expected["saved_routing"])]
    assert [r["spend"] for r in charts["savings_per_period"]][-1] == float(expected["spend"])
    assert 'data-chart="savings_per_period"' in page and 'data-chart="savings"' in page


def test_one_team_and_a_long_window_by_week(staff_client, ledger):  # noqa: F811
    acme = Team.objects.get(name="acme")
    response = staff_client.get(f"{URL}?days=30&team={acme.pk}")
    since, until = window(30)
    assert response.context["summary"] == savings_summary(since=since, until=until,
                                                          team_id=acme.pk)
    assert response.context["summary"].saved_exact == Decimal("1.0011")  # the 9-day-old hit too
    assert response.context["per_team"] == []
    assert "Savings of acme" in response.content.decode()

    weekly = staff_client.get(f"{URL}?days=90")
    periods = list(weekly.context["periods"])
    assert weekly.context["period_days"] == 7 and len(periods) == 13
    assert sum((p.summary.spend for p in periods), Decimal(0)) == weekly.context["summary"].spend


def test_sampled_quality_of_the_teams_answers(staff_client, ledger):  # noqa: F811
    from llmops.models import ResponseFeedback

    acme, globex = ledger
    for issued, score in ((acme, 9.0), (globex, 3.0)):
        row = UsageRecord.objects.filter(team=issued.api_key.team).first()
        ResponseFeedback.objects.create(usage_record=row, source="judge", score=score,
                                        model=row.served_model)
    every = staff_client.get(f"{URL}?days=30").context["quality"]
    assert sum(r["count"] for r in every) == 2
    one = staff_client.get(f"{URL}?days=30&team={acme.api_key.team_id}")
    assert [(r["score"], r["count"]) for r in one.context["quality"]] == [(9.0, 1)]
    assert 'id="table-quality"' in one.content.decode()


def test_the_page_is_staff_only(client, django_user_model):
    assert client.get(URL).status_code == 302
    client.force_login(django_user_model.objects.create_user("joe", password="pw"))
    response = client.get(URL)
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_the_admin_index_links_the_savings_page(staff_client, django_user_model):
    django_user_model.objects.filter(username="ops").update(is_superuser=True)
    assert f'href="{URL}"' in staff_client.get("/admin/").content.decode()
