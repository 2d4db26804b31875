"""set_budget, budget_report and reconcile_budgets (thin commands over budgets services)."""

import json
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from budgets.models import Budget, BudgetCounter, BudgetScope
from tests.unit.budgets.factories import spend

pytestmark = pytest.mark.django_db

D = Decimal


def run(*args) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


class TestSetBudget:
    def test_creates_then_updates_only_the_given_options(self, api_key):
        prefix = api_key.api_key.prefix
        out = run("set_budget", "--key", prefix, "--daily", "5", "--monthly", "50",
                  "--alert-threshold", "0.9", "--email", "ops@example.com")
        assert f"key {prefix}" in out and "daily $5.00" in out
        run("set_budget", "--key", f"llmops-{prefix}.secret", "--daily", "none", "--alert-only")
        b = Budget.objects.get(scope=BudgetScope.KEY)
        assert (b.daily_limit, b.monthly_limit) == (None, D("50"))
        assert (b.alert_threshold, b.action, b.notify_email) == (D("0.9"), "alert_only",
                                                                  "ops@example.com")

    def test_every_scope_and_json(self, api_key):
        data = json.loads(run("set_budget", "--team", "team-a", "--total", "100", "--json"))
        assert data["scope"] == "team" and data["total"] == "100.000000000000"
        run("set_budget", "--user", "alice", "--monthly", "10")
        run("set_budget", "--global", "--daily", "1000", "--block")
        assert set(Budget.objects.values_list("scope", flat=True)) == {"team", "user", "global"}
        assert Budget.objects.get(scope="team").alert_threshold == D("0.8")

    def test_a_limit_below_a_cent_is_echoed_with_its_digits(self, api_key):
        out = run("set_budget", "--team", "team-a", "--daily", "0.0005", "--monthly", "0.00032",
                  "--total", "12")
        assert "daily $0.0005, monthly $0.00032, total $12.00" in out
        assert "$0.00," not in out

    def test_unknown_targets_and_bad_amounts_are_command_errors(self, api_key):
        with pytest.raises(CommandError, match="No team"):
            run("set_budget", "--team", "nope", "--daily", "1")
        with pytest.raises(CommandError, match="amount"):
            run("set_budget", "--global", "--daily", "lots")
        with pytest.raises(CommandError, match="positive"):
            run("set_budget", "--global", "--daily", "-1")


class TestBudgetReport:
    def test_table_and_json_show_spend_savings_and_utilization(self, api_key, principal):
        run("set_budget", "--team", "team-a", "--monthly", "10")
        spend(principal, "a", "2", "1.5")
        from budgets.services import UsageEntry, request_settle

        request_settle(admission=None, entry=UsageEntry(
            request_id="hit", principal=principal, requested_model="m", cost_saved=D("0.25"),
            cache_status="hit_exact"))
        table = run("budget_report", "--period", "month")
        assert "team-a" in table and "15.0%" in table and "$0.250000" in table
        data = json.loads(run("budget_report", "--team", "team-a", "--json"))
        team = next(r for r in data["rows"] if r["scope"] == "team")
        assert (team["spent"], team["saved"], team["requests"]) == (
            "1.500000000000", "0.250000000000", 2)
        assert team["utilization"] == pytest.approx(0.15) and team["cache_hits"] == 1
        assert {r["scope"] for r in data["rows"]} == {"team", "user", "key"}

    def test_one_row_per_budget_however_many_requests(self, api_key, make_api_key, principal):
        """The global row is the whole gateway's, once, not one per request."""
        from tests.unit.budgets.factories import principal_of

        run("set_budget", "--global", "--monthly", "100")
        run("set_budget", "--team", "team-a", "--monthly", "10")
        other = principal_of(make_api_key(team="team-b", user="bob").api_key)
        for i in range(3):
            spend(principal, f"a{i}", "1", "0.5")
        spend(other, "b0", "1", "0.25")
        rows = json.loads(run("budget_report", "--json"))["rows"]
        keys = [(r["scope"], r["name"]) for r in rows]
        assert len(keys) == len(set(keys))
        assert [r for r in rows if r["scope"] == "global"] == [{
            "scope": "global", "name": "global", "requests": 4, "spent": "1.750000000000",
            "saved": "0.000000000000", "cache_hits": 0, "limit": "100.000000000000",
            "utilization": 0.0175, "budget_id": Budget.objects.get(scope="global").pk,
            "refused": 0, "refused_amount": "0.000000000000"}]
        assert {r["name"]: r["requests"] for r in rows if r["scope"] == "team"} == {
            "team-a": 3, "team-b": 1}
        table = run("budget_report")
        assert sum(line.startswith("global") for line in table.splitlines()) == 1

    def test_the_global_row_of_a_quiet_gateway_is_its_budget(self, db):
        run("set_budget", "--global", "--daily", "1")
        rows = json.loads(run("budget_report", "--period", "day", "--json"))["rows"]
        assert [(r["scope"], r["requests"], r["limit"]) for r in rows] == [
            ("global", 0, "1.000000000000")]

    def test_small_limits_and_spend_keep_their_digits(self, api_key, principal):
        run("set_budget", "--team", "team-a", "--daily", "0.0005")
        spend(principal, "tiny", "0.0004", "0.00000032")
        table = run("budget_report", "--period", "day")
        team = next(line for line in table.splitlines() if line.startswith("team"))
        assert "$0.0005" in team and "$0.00000032" in team and "0.1%" in team
        assert "$0.00 " not in team and not team.endswith("$0.00")

    def test_unknown_team(self, db):
        with pytest.raises(CommandError):
            run("budget_report", "--team", "ghost")


class TestReconcileBudgets:
    def test_reports_and_fixes_drift(self, api_key, principal):
        run("set_budget", "--team", "team-a", "--daily", "10")
        spend(principal, "a", "2", "1.5")
        BudgetCounter.objects.update(spent=D("9"))
        out = json.loads(run("reconcile_budgets", "--dry-run", "--json"))
        assert len(out["drifts"]) == 1 and out["drifts"][0]["ledger_spent"] == "1.500000000000"
        assert BudgetCounter.objects.get().spent == D("9")
        assert "1 drifting counter(s) fixed" in run("reconcile_budgets")
        assert BudgetCounter.objects.get().spent == D("1.5")
        assert "0 drifting" in run("reconcile_budgets")
