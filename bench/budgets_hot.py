"""Benchmark: admission on one hot budget from 1, 2 and 4 processes on PostgreSQL.

    nice -n 10 .venv/bin/python bench/budgets_hot.py [--processes 1,2,4] [--threads 2]
        [--seconds 10] [--postgres postgres://postgres@127.0.0.1:5432/llmops]

Every request of every process is one `request_admit` → `request_settle` for keys of one team
with a team (daily) and a global (monthly) budget, so every admission and every settlement locks
the same two counter rows (plus each key's own ledger row and reservation). For comparison the
same run with **cold** counters: each process its own team and no global budget, so nothing is
shared but the server. Per process count it prints admissions per second (all processes), the
p50/p99 of admission and of admission + settlement, and where the backends of the bench spent
their time, from sampling `pg_stat_activity` every 5 ms:

  * `lock`   — waiting for a row lock (another backend holds the hot counter row);
  * `active` — running a statement (or waiting on I/O, LWLocks, the WAL flush of its commit);
  * `idle`   — between statements: the round trip to Python and back, and Python itself.

If the hot rows capped throughput, `lock` would grow with the processes and hot would fall
behind cold. Numbers are printed, never asserted (bench/ rule).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
APP_NAME = "llmops-bench-hot"


def _django(dbname: str) -> None:
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "llmops.settings.test")
    import django

    django.setup()
    from django.db import connections

    for alias in connections:
        connections.databases[alias]["NAME"] = dbname
        options = connections.databases[alias].setdefault("OPTIONS", {})
        options["application_name"] = APP_NAME
        if os.environ.get("BENCH_SYNCHRONOUS_COMMIT"):
            # Diagnosis only: whether the commit's WAL flush, held under the row locks, is what
            # the hot rows serialize on. Never a production setting (the ledger is the invoice).
            options["options"] = f"-c synchronous_commit={os.environ['BENCH_SYNCHRONOUS_COMMIT']}"


def _principal(api_key_id: int):
    from llmops.models import ApiKey
    from llmops.principal import Principal

    key = ApiKey.objects.select_related("team").get(pk=api_key_id)
    return Principal(api_key_id=key.pk, key_prefix=key.prefix, user_id=key.user_id,
                     team_id=key.team_id, team_name=key.team.name, tier=key.tier)


def _child(dbname: str, key_ids: list[int], start_at: float, seconds: float) -> None:
    """One gateway-like process: a thread per key, each admitting and settling in a loop."""
    _django(dbname)
    from django.db import connection

    from budgets.services import UsageEntry, request_admit, request_settle

    principals = [_principal(k) for k in key_ids]
    connection.close()
    results: list[tuple[list[float], list[float]]] = []

    def loop(principal) -> None:
        admit_ms, total_ms = [], []

        def one() -> tuple[float, float]:
            request_id = uuid.uuid4().hex
            t0 = time.perf_counter()
            admission = request_admit(principal=principal, request_id=request_id,
                                      estimated_cost=Decimal("0.002"), holder="")
            t1 = time.perf_counter()
            request_settle(admission=admission, entry=UsageEntry(
                request_id=request_id, principal=principal, requested_model="bench",
                served_model="bench", estimated_cost=Decimal("0.002"), cost=Decimal("0.0013"),
                prompt_tokens=420, completion_tokens=96))
            return (t1 - t0) * 1000, (time.perf_counter() - t0) * 1000

        for _ in range(10):
            one()
        while time.time() < start_at:
            time.sleep(0.001)
        end = start_at + seconds
        while time.time() < end:
            a, t = one()
            admit_ms.append(a)
            total_ms.append(t)
        connection.close()
        results.append((admit_ms, total_ms))

    threads = [threading.Thread(target=loop, args=(p,)) for p in principals]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    cpu = os.times()
    print(json.dumps({"admit": [x for r in results for x in r[0]],
                      "total": [x for r in results for x in r[1]],
                      "cpu_s": cpu.user + cpu.system}))


class ActivitySampler:
    """Sample what the bench's backends are doing (pg_stat_activity) on a separate connection."""

    def __init__(self, url: str, dbname: str):
        import psycopg

        self.conn = psycopg.connect(url, autocommit=True)
        self.dbname = dbname
        self.counts: Counter = Counter()
        self.waits: Counter = Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        sql = ("SELECT state, wait_event_type, wait_event FROM pg_stat_activity "
               "WHERE datname = %s AND application_name = %s")
        while not self._stop.is_set():
            for state, wtype, wevent in self.conn.execute(sql, (self.dbname, APP_NAME)):
                if state == "active" and wtype == "Lock":
                    self.counts["lock"] += 1
                    self.waits[f"{wtype}:{wevent}"] += 1
                elif state == "active":
                    self.counts["active"] += 1
                    if wtype:
                        self.waits[f"{wtype}:{wevent}"] += 1
                else:
                    self.counts["idle"] += 1
            time.sleep(0.005)

    def __enter__(self) -> "ActivitySampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.conn.close()

    def shares(self) -> str:
        total = sum(self.counts.values()) or 1
        main = " ".join(f"{k} {self.counts[k] / total:.0%}" for k in ("lock", "active", "idle"))
        top = ", ".join(f"{k} {v / total:.0%}" for k, v in self.waits.most_common(3))
        return f"{main} ({top or 'no waits'})"


def _setup(processes: int, threads: int) -> dict[str, list[list[int]]]:
    """Create the keys and budgets; return the key ids per process for hot and cold runs.

    Both charge two counters per request: hot, the one team's daily and the global monthly
    budget (shared by every key); cold, each key's own team daily and key monthly budget."""
    from budgets.models import BudgetScope
    from budgets.services import budget_set
    from llmops.services import api_key_create

    big = Decimal("1000000")
    budget_set(scope=BudgetScope.GLOBAL, monthly_limit=big)
    first = api_key_create(team_name="hot-team", username="hot-0").api_key
    budget_set(scope=BudgetScope.TEAM, team=first.team, daily_limit=big)
    hot = [[first.pk if (p, t) == (0, 0) else
            api_key_create(team_name="hot-team", username=f"hot-{p}-{t}").api_key.pk
            for t in range(threads)] for p in range(processes)]
    cold = []
    for p in range(processes):
        ids = []
        for t in range(threads):
            key = api_key_create(team_name=f"cold-{p}-{t}", username=f"cold-{p}-{t}").api_key
            budget_set(scope=BudgetScope.TEAM, team=key.team, daily_limit=big)
            budget_set(scope=BudgetScope.KEY, api_key=key, monthly_limit=big)
            ids.append(key.pk)
        cold.append(ids)
    return {"hot": hot, "cold": cold}


def _global_budget(on: bool) -> None:
    """Cold runs share nothing: the global budget (which covers every key) is switched off."""
    from budgets.models import Budget, BudgetScope

    Budget.objects.filter(scope=BudgetScope.GLOBAL).update(is_active=on)


def _pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * q))] if values else float("nan")


def _run(url: str, dbname: str, key_ids: list[list[int]], seconds: float) -> dict:
    start_at = time.time() + 8  # every child imported Django and warmed up by then
    env = {**os.environ, "DATABASE_URL": url}
    procs = [subprocess.Popen([sys.executable, __file__, "--child", dbname, "--keys",
                               ",".join(map(str, keys)), "--start-at", repr(start_at),
                               "--seconds", str(seconds)], env=env, cwd=ROOT,
                              stdout=subprocess.PIPE, text=True) for keys in key_ids]
    while time.time() < start_at:
        time.sleep(0.01)
    load = os.getloadavg()
    with ActivitySampler(url, dbname) as sampler:
        outputs = [p.communicate()[0] for p in procs]
    data = [json.loads(out.strip().splitlines()[-1]) for out in outputs]
    admit = [x for d in data for x in d["admit"]]
    total = [x for d in data for x in d["total"]]
    return {"n": len(admit), "rate": len(admit) / seconds, "admit_p50": _pct(admit, 0.5),
            "admit_p99": _pct(admit, 0.99), "total_p50": _pct(total, 0.5),
            "total_p99": _pct(total, 0.99), "mean": statistics.fmean(total) if total else 0,
            "client_cpu_ms": 1000 * sum(d["cpu_s"] for d in data) / max(1, len(admit)),
            "where": sampler.shares(), "load": " ".join(f"{x:.2f}" for x in load)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--processes", default="1,2,4")
    parser.add_argument("--threads", type=int, default=2,
                        help="Concurrent requests per process (each its own connection).")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--counters", default="hot,cold",
                        help="Which runs: hot (shared counters), cold (each key its own).")
    parser.add_argument("--postgres", default=os.environ.get(
        "BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/llmops"))
    parser.add_argument("--synchronous-commit", default="",
                        help="Diagnosis: run the bench's sessions with this synchronous_commit "
                             "(off: commits do not wait for the WAL flush).")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--keys", help=argparse.SUPPRESS)
    parser.add_argument("--start-at", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child, [int(k) for k in args.keys.split(",")], args.start_at, args.seconds)
        return
    os.environ["DATABASE_URL"] = args.postgres
    if args.synchronous_commit:
        os.environ["BENCH_SYNCHRONOUS_COMMIT"] = args.synchronous_commit
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "llmops.settings.test")
    import django

    django.setup()
    from django.db import connection

    dbname = f"bench_hot_{os.getpid()}"
    connection.settings_dict["TEST"]["NAME"] = dbname
    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    counts = [int(p) for p in args.processes.split(",")]
    rows = []
    try:
        keys = _setup(max(counts), args.threads)
        connection.close()
        for n in counts:
            for kind in args.counters.split(","):
                _global_budget(kind == "hot")
                connection.close()
                r = _run(args.postgres, dbname, keys[kind][:n], args.seconds)
                rows.append((n, kind, r))
                print(f"{n} process(es) × {args.threads} threads, {kind}: {r['rate']:.0f} adm/s, "
                      f"admit p50/p99 {r['admit_p50']:.2f}/{r['admit_p99']:.2f} ms, "
                      f"admit+settle p50/p99 {r['total_p50']:.2f}/{r['total_p99']:.2f} ms, "
                      f"client CPU {r['client_cpu_ms']:.2f} ms/req; backends: {r['where']}; "
                      f"load {r['load']}", flush=True)
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)
    print("\n| processes × threads | counters | admissions/s | admit p50 / p99 ms | admit + "
          "settle p50 / p99 ms | client CPU ms/req | backends: lock / active / idle | load |")
    print("|---|---|---:|---|---|---:|---|---|")
    for n, kind, r in rows:
        print(f"| {n} × {args.threads} | {kind} | {r['rate']:.0f} | {r['admit_p50']:.2f} / "
              f"{r['admit_p99']:.2f} | {r['total_p50']:.2f} / {r['total_p99']:.2f} | "
              f"{r['client_cpu_ms']:.2f} | {r['where']} | {r['load']} |")


if __name__ == "__main__":
    main()
