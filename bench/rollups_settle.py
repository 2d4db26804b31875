"""Print settlement throughput on PostgreSQL with the roll-ups settlement keeps and without them.

    nice -n 10 .venv/bin/python bench/rollups_settle.py [--rounds 20] [--requests 100]
        [--threads 1,4] [--postgres postgres://postgres@127.0.0.1:5432/llmops_settle_bench]

(Re)creates the throw-away database, migrates it, then for each thread count and each case runs
`--rounds` rounds of one run with roll-ups and one without (`budgets.rollups.INLINE`), the order
alternating between rounds: many short runs, so that a drift of the host's load falls on both
alike. Each run admits and settles `--requests` requests (`request_admit` → `request_settle`,
the one-statement settlement), every thread on its own key (the same keys in every run):

  * `teams`: every thread its own team (key and team daily budgets), all on one model: nothing
    is shared between threads but what the roll-ups share (and the server);
  * `one team`: every thread a key of one team with a team budget: the team's counter row is
    the hot row every settlement queues on, roll-ups or not.

Per case it prints the median and the range of the rates with and without roll-ups, the median
and range of the per-round ratio (with / without − 1), and the CPU per request of the bench
process (`getrusage`) and of its PostgreSQL backends (`/proc/<pid>/stat`, so the server on this
host) summed over all rounds: CPU depends much less than the rate on what else the host runs.
Numbers are printed, never asserted (bench/ rule). The database is dropped at the end.
"""

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
WARMUP = 20


def _recreate(url: str, *, drop_only: bool = False) -> None:
    import psycopg

    parts = urlsplit(url)
    admin, name = urlunsplit(parts._replace(path="/postgres")), parts.path.lstrip("/")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if not drop_only:
            conn.execute(f'CREATE DATABASE "{name}"')


def _principals(threads: int, *, one_team: bool) -> list:
    """Create one key per thread (one team each, or all in one team) with a key and a team
    daily budget too large to refuse; return their principals."""
    from budgets.models import BudgetScope
    from budgets.services import budget_set
    from llmops.principal import Principal
    from llmops.services import api_key_create

    tag = uuid.uuid4().hex[:8]
    big = Decimal("1000000")
    out = []
    for i in range(threads):
        team = f"settle-{tag}" if one_team else f"settle-{tag}-{i}"
        key = api_key_create(team_name=team, username=f"settle-{tag}-{i}").api_key
        budget_set(scope=BudgetScope.KEY, api_key=key, daily_limit=big)
        if i == 0 or not one_team:
            budget_set(scope=BudgetScope.TEAM, team=key.team, daily_limit=big)
        out.append(Principal(api_key_id=key.pk, key_prefix=key.prefix, user_id=key.user_id,
                             team_id=key.team_id, team_name=key.team.name, tier=key.tier))
    return out


@dataclass(frozen=True)
class Run:
    requests: int
    seconds: float
    client_cpu: float  # seconds
    server_cpu: float


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _backend_cpu(pid: int) -> float:
    """Return the CPU seconds the PostgreSQL backend `pid` has used (same host)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def settle_run(*, on: bool, requests: int, principals: list) -> Run:
    """Admit and settle `requests` requests, a thread per principal, roll-ups on or off."""
    from django.db import connection

    from budgets import rollups
    from budgets.services import UsageEntry, request_admit, request_settle

    threads = len(principals)

    def one(principal) -> None:
        request_id = uuid.uuid4().hex
        admission = request_admit(principal=principal, request_id=request_id,
                                  estimated_cost=Decimal("0.002"))
        request_settle(admission=admission, entry=UsageEntry(
            request_id=request_id, principal=principal, requested_model="model-01",
            served_model="model-01", estimated_cost=Decimal("0.002"), cost=Decimal("0.0013"),
            prompt_tokens=420, completion_tokens=96, latency_ms=300))

    def worker(principal) -> float:
        try:
            connection.ensure_connection()
            pid = connection.connection.info.backend_pid
            before = _backend_cpu(pid)
            for _ in range(requests // threads):
                one(principal)
            return _backend_cpu(pid) - before
        finally:
            connection.close()  # this thread's own connection

    rollups.INLINE = on
    try:
        for i in range(WARMUP):
            one(principals[i % threads])
        started, cpu = time.perf_counter(), _cpu()
        with ThreadPoolExecutor(max_workers=threads) as pool:
            server = sum(pool.map(worker, principals))
        return Run(requests // threads * threads, time.perf_counter() - started,
                   _cpu() - cpu, server)
    finally:
        rollups.INLINE = True


def compare(*, rounds: int, requests: int, threads: int, one_team: bool) -> str:
    """Return one line: with / without roll-ups over `rounds` interleaved rounds."""
    principals = _principals(threads, one_team=one_team)
    runs: dict[bool, list[Run]] = {True: [], False: []}
    for r in range(rounds):
        for mode in ((True, False) if r % 2 == 0 else (False, True)):
            runs[mode].append(settle_run(on=mode, requests=requests, principals=principals))
    on, off = ([run.requests / run.seconds for run in runs[mode]] for mode in (True, False))
    ratios = [a / b - 1 for a, b in zip(on, off, strict=True)]

    def per_request(mode: bool, cpu: str) -> float:
        return (1000 * sum(getattr(run, cpu) for run in runs[mode])
                / sum(run.requests for run in runs[mode]))

    return (f"on {statistics.median(on):5.0f} ({min(on):.0f}-{max(on):.0f}) / "
            f"off {statistics.median(off):5.0f} ({min(off):.0f}-{max(off):.0f}) req/s; "
            f"on/off {statistics.median(ratios):+.1%} "
            f"({min(ratios):+.1%} to {max(ratios):+.1%}); CPU ms/req client "
            f"{per_request(True, 'client_cpu'):.2f} / {per_request(False, 'client_cpu'):.2f}, "
            f"server {per_request(True, 'server_cpu'):.2f} / "
            f"{per_request(False, 'server_cpu'):.2f}")


def _child(args: argparse.Namespace) -> None:
    os.environ["DATABASE_URL"] = args.postgres
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "llmops.settings.test")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    print(f"{args.rounds} interleaved rounds of {args.requests} requests per mode", flush=True)
    for threads in map(int, args.threads.split(",")):
        for label, one_team in (("teams", False), ("one team", True)):
            line = compare(rounds=args.rounds, requests=args.requests, threads=threads,
                           one_team=one_team)
            print(f"  {threads} thread(s), {label:<8} {line}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=20, help="Rounds of (on, off) per case.")
    parser.add_argument("--requests", type=int, default=100, help="Requests per run.")
    parser.add_argument("--threads", default="1,4", help="Thread counts, comma-separated.")
    parser.add_argument("--postgres", default=os.environ.get(
        "BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/llmops_settle_bench"),
        help="The throw-away database (dropped and created).")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args)
        return
    _recreate(args.postgres)
    try:
        subprocess.run([sys.executable, __file__, "--child", *sys.argv[1:]], check=False,
                       cwd=ROOT)
    finally:
        _recreate(args.postgres, drop_only=True)


if __name__ == "__main__":
    main()
