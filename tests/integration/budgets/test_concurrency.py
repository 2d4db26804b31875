"""No overspend under concurrency: many threads in several OS processes against one small budget.

PostgreSQL: 2 gateway processes × 16 threads, 240 requests, plus a process killed after admission
(its reservations must come back through the sweep). SQLite: 1 process × 16 threads, 200 requests.
A monitor samples the counters throughout: `spent + reserved` never passes a limit, at any moment.
"""

import multiprocessing
import threading
import time
from decimal import Decimal

import pytest
from django.db import connection
from django.db.models import Sum

from budgets.models import (
    BudgetAlert,
    BudgetCounter,
    BudgetReservation,
    BudgetScope,
    UsageRecord,
)
from budgets.services import budget_counters_reconcile, budget_set, reservations_release_stale
from tests.integration.budgets import workers
from tests.toolkit.rollups import assert_rollups_match_ledger
from tests.unit.budgets.factories import principal_of

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

RESERVE = Decimal("0.02")  # each request's upper bound
TEAM_DAILY = Decimal("1.00")  # room for 50 concurrent reservations: most of 200+ get refused


@pytest.fixture
def budgets(api_key):
    key = api_key.api_key
    return {
        "key": budget_set(scope=BudgetScope.KEY, api_key=key, daily_limit=Decimal("5")),
        "team": budget_set(scope=BudgetScope.TEAM, team=key.team, daily_limit=TEAM_DAILY,
                           alert_threshold=Decimal("0.5")),
        "global": budget_set(scope=BudgetScope.GLOBAL, monthly_limit=Decimal("100"),
                             total_limit=Decimal("1000")),
    }


class Monitor(threading.Thread):
    """Sample every counter's spent + reserved against its limit while the load runs."""

    def __init__(self):
        super().__init__(daemon=True)
        self.stop = threading.Event()
        self.samples = 0
        self.violations: list[str] = []

    def run(self):
        try:
            while not self.stop.is_set():
                for c in BudgetCounter.objects.select_related("budget"):
                    limit = c.budget.limit_for(c.period)
                    if limit is not None and c.spent + c.reserved > limit:
                        self.violations.append(f"{c}: {c.spent} + {c.reserved} > {limit}")
                self.samples += 1
                time.sleep(0.01)
        finally:
            connection.close()


def assert_no_overspend_and_one_row_each(budgets: dict, admitted: list, refused: list) -> None:
    assert admitted and refused, "the load must both fill the budget and be refused"
    assert all(code == "budget_exceeded" for _, code in refused)
    admitted_ids = {rid for rid, _ in admitted}
    refused_ids = {rid for rid, _ in refused}
    assert not admitted_ids & refused_ids
    ledger = dict(UsageRecord.objects.values_list("request_id", "cost"))
    # Exactly one ledger row per admitted request (retried settles included), none for refusals.
    assert set(ledger) == admitted_ids
    assert len(ledger) == len(admitted)
    assert {rid: Decimal(cost) for rid, cost in admitted} == ledger
    total = UsageRecord.objects.aggregate(total=Sum("cost"))["total"]
    for budget in budgets.values():
        for counter in budget.counters.all():
            limit = budget.limit_for(counter.period)
            assert counter.reserved == 0, counter
            assert counter.spent <= limit, counter
            assert counter.spent == total, counter  # every request hit every budget
    team_day = budgets["team"].counters.get(period="day")
    assert team_day.spent > TEAM_DAILY / 2
    # No alert storm: the team's day sent one threshold alert and one limit alert (refusals).
    assert sorted(team_day.alerts.values_list("kind", flat=True)) == ["limit", "threshold"]
    assert not BudgetAlert.objects.exclude(counter=team_day).exists()
    # Every 402 counted exactly once, on the team's day (the only limit that refused).
    counted = BudgetCounter.objects.aggregate(n=Sum("refused"), usd=Sum("refused_amount"))
    assert (team_day.refused, counted["n"]) == (len(refused), len(refused))
    assert counted["usd"] == team_day.refused_amount == len(refused) * RESERVE
    assert budget_counters_reconcile(fix=False) == []
    # The roll-ups, written by the same concurrent settlements (and the sweep), add up too.
    assert_rollups_match_ledger()


@pytest.mark.postgres
def test_no_overspend_across_processes_on_postgresql(budgets, api_key):
    if connection.vendor != "postgresql":
        pytest.skip("needs DATABASE_URL pointing at PostgreSQL")
    principal = principal_of(api_key.api_key)
    db_name = connection.settings_dict["NAME"]
    ctx = multiprocessing.get_context("spawn")

    # A gateway process that is killed after admitting, before settling.
    died = ctx.Queue()
    killed = ctx.Process(target=workers.process_die_after_admit, args=(
        db_name, principal, [f"killed-{i}" for i in range(5)], str(RESERVE), died))
    killed.start()
    killed.join(timeout=60)
    dead_ids = set()
    while not died.empty():
        dead_ids.add(died.get(timeout=1))
    assert len(dead_ids) == 5
    team_day = budgets["team"].counters.get(period="day")
    assert team_day.reserved == 5 * RESERVE

    results = ctx.Queue()
    procs = [
        ctx.Process(target=workers.process_main, args=(db_name, {
            "principal": principal,
            "request_ids": [f"p{p}-{i}" for i in range(120)],
            "reserve": RESERVE, "threads": 16, "provider_seconds": 0.05, "seed": p,
        }, results))
        for p in range(2)
    ]
    monitor = Monitor()
    monitor.start()
    started = time.monotonic()
    try:
        for proc in procs:
            proc.start()
        outcomes = [results.get(timeout=60) for _ in procs]
        for proc in procs:
            proc.join(timeout=30)
    finally:
        monitor.stop.set()
        monitor.join()
        for proc in procs:  # never leave a stuck gateway process behind a failed run
            if proc.is_alive():
                proc.terminate()
                proc.join(timeout=5)
    elapsed = time.monotonic() - started
    # The sweep gives the dead process's reservations back; nothing else is stale.
    assert reservations_release_stale(older_than_seconds=0) == 5

    assert [o["errors"] for o in outcomes] == [[], []]
    assert len({o["pid"] for o in outcomes}) == 2
    assert monitor.violations == [] and monitor.samples > 5
    admitted = [a for o in outcomes for a in o["admitted"]]
    refused = [r for o in outcomes for r in o["refused"]]
    assert len(admitted) + len(refused) == 240
    # The dead requests keep one ledger row each, written by the sweep, charged their
    # reservation (the most they could have cost): they count as admitted at that cost.
    dead_rows = UsageRecord.objects.filter(request_id__in=dead_ids)
    assert sorted(dead_rows.values_list("error_kind", flat=True)) == ["abandoned"] * 5
    assert all(row.cost == row.estimated_cost > 0 for row in dead_rows)
    admitted += [(row.request_id, str(row.cost)) for row in dead_rows]
    assert not BudgetReservation.objects.exists()
    assert_no_overspend_and_one_row_each(budgets, admitted, refused)
    print(f"\npostgresql: {len(admitted)} admitted, {len(refused)} refused (402) in "
          f"{elapsed:.1f}s; monitor sampled {monitor.samples}×")


def test_no_overspend_with_threads_on_sqlite(budgets, api_key):
    if connection.vendor != "sqlite":
        pytest.skip("the SQLite variant runs when DATABASE_URL is unset")
    principal = principal_of(api_key.api_key)
    monitor = Monitor()
    monitor.start()
    outcome = workers.run_requests(principal=principal,
                                   request_ids=[f"s-{i}" for i in range(200)],
                                   reserve=RESERVE, threads=16, provider_seconds=0.02, seed=7)
    monitor.stop.set()
    monitor.join()
    assert outcome["errors"] == []
    assert monitor.violations == [] and monitor.samples > 5
    assert_no_overspend_and_one_row_each(budgets, outcome["admitted"], outcome["refused"])
