"""Budget refusals are visible: a log line, the metric, a count on the counter, the report row.

Runs on SQLite and, with DATABASE_URL, on PostgreSQL (where the admission statement counts the
refusal itself).
"""

import io
import json
import logging
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from prometheus_client import REGISTRY

from budgets.errors import BudgetExceeded, DuplicateRequestId
from budgets.models import BudgetAction, BudgetCounter, BudgetScope
from budgets.periods import period_start
from budgets.selectors import refusals_by_budget
from budgets.services import budget_set, request_admit
from llmops.logging import JsonFormatter
from tests.unit.budgets.factories import spend

pytestmark = pytest.mark.django_db

D = Decimal


def refused_metric(scope: str) -> float:
    return REGISTRY.get_sample_value("llm_requests_refused_total",
                                     {"reason": "budget", "scope": scope}) or 0.0


def counter(budget, period: str = "day") -> BudgetCounter:
    return BudgetCounter.objects.get(budget=budget, period=period,
                                     period_start=period_start(period, timezone.now()))


def refusal_lines(caplog) -> list[dict]:
    return [json.loads(JsonFormatter().format(r)) for r in caplog.records
            if r.name == "llmops.refusal"]


def report(*args: str) -> dict:
    out = io.StringIO()
    call_command("budget_report", "--json", *args, stdout=out)
    return json.loads(out.getvalue())


def test_a_402_writes_one_line_counts_the_metric_the_counter_and_the_report(
    api_key, principal, caplog
):
    team = budget_set(scope=BudgetScope.TEAM, team=api_key.api_key.team, daily_limit=D("1"))
    key = budget_set(scope=BudgetScope.KEY, api_key=api_key.api_key, monthly_limit=D("10"))
    request_admit(principal=principal, request_id="r1", estimated_cost=D("0.6"))
    before = refused_metric("team")

    with caplog.at_level(logging.INFO, logger="llmops.refusal"), \
            pytest.raises(BudgetExceeded):
        request_admit(principal=principal, request_id="r2", estimated_cost=D("0.5"),
                      requested_model="simulated-premium")

    (line,) = refusal_lines(caplog)
    assert line["level"] == "WARNING" and line["message"] == "request refused"
    assert line["request_id"] == "r2" and line["reason"] == "budget" and line["scope"] == "team"
    assert line["team"] == "team-a" and line["team_id"] == api_key.api_key.team_id
    assert line["key_prefix"] == api_key.api_key.prefix
    assert line["user_id"] == api_key.api_key.user_id
    assert line["requested_model"] == "simulated-premium"
    assert line["period"] == "day" and line["unit"] == "usd"
    assert line["limit"] == "1.000000000000"
    assert line["remaining"] == "0.400000000000" and line["requested"] == "0.500000000000"
    assert line["budget_id"] == team.pk
    assert api_key.key not in json.dumps(line)  # the key's prefix, never its secret

    assert refused_metric("team") == before + 1

    refused = counter(team)
    assert (refused.refused, refused.refused_amount) == (1, D("0.5"))
    assert refused.last_refused_at is not None and refused.reserved == D("0.6")
    # Counted once, on the limit that refused; the key budget had room.
    assert counter(key, "month").refused == 0

    for period in ("day", "month"):
        rows = {row["budget_id"]: row for row in report("--period", period)["rows"]}
        assert rows[team.pk]["refused"] == 1
        assert rows[team.pk]["refused_amount"] == "0.500000000000"
        assert rows[key.pk]["refused"] == 0


def test_the_report_table_has_the_refusal_columns(api_key, principal):
    team = budget_set(scope=BudgetScope.TEAM, team=api_key.api_key.team, daily_limit=D("1"))
    for i in range(2):
        with pytest.raises(BudgetExceeded):
            request_admit(principal=principal, request_id=f"big{i}", estimated_cost=D("1.25"))
    out = io.StringIO()
    call_command("budget_report", "--period", "day", stdout=out)
    header, *lines = out.getvalue().splitlines()
    assert header.rstrip().endswith("REFUSED  REFUSED AMOUNT")
    (row,) = [line for line in lines if line.startswith("team")]
    count, amount = row.split()[-2:]
    assert count == "2" and Decimal(amount.lstrip("$").replace(",", "")) == D("2.5")
    assert counter(team).refused == 2


def test_the_narrowest_refusing_limit_counts_it_and_a_month_report_adds_its_days(
    api_key, principal
):
    key = budget_set(scope=BudgetScope.KEY, api_key=api_key.api_key, daily_limit=D("1"),
                     monthly_limit=D("1.5"))
    glob = budget_set(scope=BudgetScope.GLOBAL, monthly_limit=D("1"))
    spend(principal, "a", "0.9", "0.9")
    with pytest.raises(BudgetExceeded) as exc:  # every limit but the month's 1.5 refuses
        request_admit(principal=principal, request_id="b", estimated_cost=D("0.2"))
    assert exc.value.extra["budget"]["scope"] == "key" and exc.value.extra["period"] == "day"
    assert counter(key).refused == 1
    assert counter(key, "month").refused == 0 and counter(glob, "month").refused == 0

    budget_set(scope=BudgetScope.KEY, api_key=api_key.api_key, daily_limit=None)
    with pytest.raises(BudgetExceeded) as exc:  # now the key's month refuses
        request_admit(principal=principal, request_id="c", estimated_cost=D("0.7"))
    assert exc.value.extra["period"] == "month"
    assert counter(key, "month").refused == 1

    start = period_start("month", timezone.now())
    assert refusals_by_budget(period="month", start=start) == {key.pk: (2, D("0.9"))}
    today = period_start("day", timezone.now())
    assert refusals_by_budget(period="day", start=today) == {key.pk: (1, D("0.2"))}


def test_alert_only_budgets_refuse_nothing_and_count_nothing(api_key, principal):
    b = budget_set(scope=BudgetScope.TEAM, team=api_key.api_key.team, daily_limit=D("1"),
                   action=BudgetAction.ALERT_ONLY)
    spend(principal, "a", "2", "1.5")
    assert counter(b).refused == 0


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the PostgreSQL statement")
def test_on_postgresql_the_admission_statement_counts_the_refusal_itself(api_key, principal):
    b = budget_set(scope=BudgetScope.KEY, api_key=api_key.api_key, daily_limit=D("1"))
    with pytest.raises(BudgetExceeded):  # the first refusal also claims the limit alert
        request_admit(principal=principal, request_id="x0", estimated_cost=D("2"))
    with CaptureQueriesContext(connection) as ctx, pytest.raises(BudgetExceeded):
        request_admit(principal=principal, request_id="x1", estimated_cost=D("3"))
    # Counted by the admission statement: no write of its own.
    statements = [q["sql"].strip() for q in ctx.captured_queries]
    (admission,) = [sql for sql in statements if "FOR UPDATE" in sql]
    assert "refused" in admission
    assert not [sql for sql in statements if sql.startswith(("UPDATE", "INSERT"))], statements
    c = counter(b)
    assert (c.refused, c.refused_amount, c.reserved) == (2, D("5"), D(0))


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the PostgreSQL statement")
def test_on_postgresql_a_reused_request_id_is_not_counted_as_a_refusal(api_key, principal):
    b = budget_set(scope=BudgetScope.KEY, api_key=api_key.api_key, daily_limit=D("1"))
    spend(principal, "used", "0.5", "0.5")
    with pytest.raises(DuplicateRequestId):  # the duplicate wins: no 402, nothing counted
        request_admit(principal=principal, request_id="used", estimated_cost=D("2"))
    assert counter(b).refused == 0


def test_a_periods_first_request_refused_still_counts_and_alerts(api_key, principal):
    # No counter yet (a new day, or a budget made without seeding): on SQLite the refused
    # transaction rolls back the counter it created, so the count creates it again.
    from budgets.models import Budget, BudgetAlert

    b = Budget.objects.create(scope=BudgetScope.KEY, api_key=api_key.api_key,
                              daily_limit=D("0.001"))
    assert not BudgetCounter.objects.filter(budget=b).exists()
    with pytest.raises(BudgetExceeded):
        request_admit(principal=principal, request_id="first", estimated_cost=D("0.01"))
    c = counter(b)
    assert (c.refused, c.refused_amount, c.reserved) == (1, D("0.01"), D(0))
    assert BudgetAlert.objects.filter(counter=c, kind="limit").count() == 1
