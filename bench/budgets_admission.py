"""Print the latency budget enforcement adds per request: admission + settlement, per database.

    .venv/bin/python bench/budgets_admission.py [--requests 500] [--threads 8]
        [--postgres postgres://postgres@127.0.0.1:5432/llmops]

For SQLite (a temporary file) and PostgreSQL (a throw-away `bench_…` database), it measures
`request_admit` → `request_settle` for one principal:
  * ledger only   — no budget applies (the ledger row and the reservation claim are always paid);
  * 4 budgets     — key (daily), user (monthly), team (daily + total), global (monthly): 5 counters;
  * 4 budgets, N threads — the same, concurrently, all contending for the same counter rows.
Numbers are printed, never asserted (bench/ rule).
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _child(engine: str, requests: int, threads: int) -> None:
    """Run inside a fresh interpreter whose DATABASE_URL selects the engine."""
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "llmops.settings.test")
    import django

    django.setup()
    tmp = tempfile.mkdtemp(prefix="bench-budgets-")
    test_name = (os.path.join(tmp, "bench.sqlite3") if engine == "sqlite"
                 else f"bench_budgets_{os.getpid()}")
    from django.db import connection

    connection.settings_dict["TEST"]["NAME"] = test_name
    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        _measure(engine, requests, threads)
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)


def _measure(engine: str, requests: int, threads: int) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from budgets.models import BudgetScope
    from budgets.services import UsageEntry, budget_set, request_admit, request_settle
    from llmops.models import ApiKey
    from llmops.principal import Principal
    from llmops.services import api_key_create

    def principal_for(team: str, user: str) -> Principal:
        key = api_key_create(team_name=team, username=user).api_key
        return Principal(api_key_id=key.pk, key_prefix=key.prefix, user_id=key.user_id,
                         team_id=key.team_id, team_name=team, tier=key.tier)

    def one(principal: Principal) -> float:
        request_id = uuid.uuid4().hex
        started = time.perf_counter()
        admission = request_admit(principal=principal, request_id=request_id,
                                  estimated_cost=Decimal("0.002"))
        request_settle(admission=admission, entry=UsageEntry(
            request_id=request_id, principal=principal, requested_model="bench",
            served_model="bench", estimated_cost=Decimal("0.002"), cost=Decimal("0.0013"),
            prompt_tokens=420, completion_tokens=96))
        return time.perf_counter() - started

    def run(label: str, principal: Principal, n: int, workers: int) -> None:
        for _ in range(20):  # warm connections, counters and caches
            one(principal)

        def timed(_: int) -> float:
            try:
                return one(principal)
            finally:
                if workers > 1:
                    connection.close()

        started = time.perf_counter()
        if workers == 1:
            samples = [one(principal) for _ in range(n)]
        else:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                samples = list(pool.map(timed, range(n)))
        wall = time.perf_counter() - started
        samples.sort()
        ms = [s * 1000 for s in samples]
        with CaptureQueriesContext(connection) as queries:
            one(principal)
        print(f"  {label:<28} mean {statistics.fmean(ms):6.2f} ms   p50 {ms[len(ms) // 2]:6.2f}"
              f"   p95 {ms[int(len(ms) * 0.95)]:6.2f}   p99 {ms[int(len(ms) * 0.99)]:6.2f}"
              f"   {n / wall:6.0f} req/s   {len(queries)} statements")

    print(f"{engine} ({connection.vendor}, {requests} requests)")
    free = principal_for("bench-free", "free")
    run("ledger only (no budget)", free, requests, 1)
    limited = principal_for("bench-team", "limited")
    key = ApiKey.objects.select_related("user", "team").get(pk=limited.api_key_id)
    big = Decimal("1000000")
    budget_set(scope=BudgetScope.KEY, api_key=key, daily_limit=big)
    budget_set(scope=BudgetScope.USER, user=key.user, monthly_limit=big)
    budget_set(scope=BudgetScope.TEAM, team=key.team, daily_limit=big, total_limit=big)
    budget_set(scope=BudgetScope.GLOBAL, monthly_limit=big)
    run("4 budgets (5 counters)", limited, requests, 1)
    if threads > 1:
        run(f"4 budgets, {threads} threads", limited, requests, threads)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=500, help="Requests per scenario.")
    parser.add_argument("--threads", type=int, default=8, help="Threads for the contended run.")
    parser.add_argument("--postgres", default=os.environ.get(
        "BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/llmops"),
        help="PostgreSQL server to create the throw-away database on ('' to skip).")
    parser.add_argument("--child", choices=["sqlite", "postgresql"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child, args.requests, args.threads)
        return
    runs = [("sqlite", "")]
    if args.postgres:
        runs.append(("postgresql", args.postgres))
    for engine, url in runs:
        env = {**os.environ, "DATABASE_URL": url}
        if not url:
            env.pop("DATABASE_URL", None)
        subprocess.run([sys.executable, __file__, "--child", engine, "--requests",
                        str(args.requests), "--threads", str(args.threads)],
                       env=env, check=False, cwd=ROOT)


if __name__ == "__main__":
    main()
