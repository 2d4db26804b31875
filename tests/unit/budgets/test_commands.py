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
        assert "team-a" in table and "15.0%" in table and "0.250000" in table
        data = json.loads(run("budget_report", "--team", "team-a", "--json"))
        team = next(r for r in data["rows"] if r["scope"] == "team")
        assert (team["spent"], team["saved"], team["requests"]) == (
            "1.500000000000", "0.250000000000", 2)
        assert team["utilization"] == pytest.approx(0.15) and team["cache_hits"] == 1
        assert {r["scope"] for r in data["rows"]} == {"team", "user", "key"}

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
