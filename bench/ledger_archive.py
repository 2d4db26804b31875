"""Print what archiving one month of the ledger costs by dropping its partition against deleting
its rows in batches, and what the per-team request-id trigger adds to a ledger insert
(PostgreSQL).

    nice -n 10 .venv/bin/python bench/ledger_archive.py [--rows 1000000]
        [--postgres postgres://postgres@127.0.0.1:5432/llmops_archive_bench] [--keep]

It (re)creates the throw-away database, migrates it (the ledger becomes partitioned by month),
fills the first monthly partition with synthetic rows (one INSERT … SELECT, the trigger off
during the load), archives the month with `ledger_archive` (cut at the month's end: the month is
written out and its partition dropped), fills it again and archives with a cut one microsecond
earlier (the month is no longer whole: every row goes through the batched delete). Then it times
a team's ledger inserts in the server with the trigger on and off. The database is dropped at
the end (unless --keep). Numbers are printed, never asserted (bench/ rule); the data never
enters CI.
"""

import argparse
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

sys.path[0] = str(Path(__file__).resolve().parent.parent)
from bench.ledger_scale import _recreate, _setup_django  # noqa: E402

LOAD = """
INSERT INTO {table} (request_id, created_at, endpoint, requested_model, served_model,
    attempted_models, routing_reason, prompt_tokens, completion_tokens, cached_tokens,
    reasoning_tokens, estimated_prompt_tokens, estimated_cost, cost, cost_saved, cache_saved,
    reference_model, routing_saved, shadow, shadow_cache_status, shadow_cache_entry,
    shadow_model, shadow_cache_saved, shadow_routing_saved, cache_status, stream, latency_ms,
    status, error_kind, http_status, team_id)
SELECT 'bench-' || g, %(start)s + (g::bigint * %(step)s) * interval '1 microsecond',
    'chat.completions', 'gpt-4o-mini', 'gpt-4o-mini', '["gpt-4o-mini"]', 'auto',
    120 + g %% 900, 40 + g %% 300, 0, 0,
    130, 0.0004, 0.0002, 0, 0, '', 0, false, '', '', '', 0, 0, 'miss', g %% 3 = 0, 200 + g %% 700,
    'ok', '', 200, %(team)s
FROM generate_series(1, %(rows)s) g
"""


def _fill(month, rows: int) -> float:
    from django.db import connection

    from budgets.partitions import TABLE, ledger_partitions_ensure

    ledger_partitions_ensure(now=month.lower, ahead=0)
    step = int((month.upper - month.lower).total_seconds() * 1e6 / (rows + 1))
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(f"ALTER TABLE {TABLE} DISABLE TRIGGER USER")
        cursor.execute(LOAD.format(table=TABLE), {"start": month.lower, "step": step,
                                                  "rows": rows, "team": None})
        cursor.execute(f"ALTER TABLE {TABLE} ENABLE TRIGGER USER")
        cursor.execute(f"ANALYZE {TABLE}")
    return time.perf_counter() - started


def _archive(cut, rows: int, label: str) -> None:
    from budgets import partitions
    from budgets.services.archive import ledger_archive

    dropping = []
    drop = partitions.ledger_partition_drop

    def timed_drop(partition):
        started = time.perf_counter()
        drop(partition)
        dropping.append(time.perf_counter() - started)

    partitions.ledger_partition_drop = timed_drop
    try:
        with tempfile.TemporaryDirectory() as tmp:
            started = time.perf_counter()
            archived = ledger_archive(before=cut, to=Path(tmp) / "month.csv.gz")
            took = time.perf_counter() - started
    finally:
        partitions.ledger_partition_drop = drop
    assert archived == rows, (archived, rows)
    detail = f" (detach + drop {sum(dropping) * 1000:.0f} ms)" if dropping else ""
    print(f"  {label:<44} {took:7.1f} s for {archived:,} rows{detail}", flush=True)


def _insert_cost(rows: int) -> None:
    """Time, in the server (EXPLAIN ANALYZE, rolled back), inserting `rows` rows of one team
    into the current month with the request-id trigger on and off: the difference per row is
    what the trigger adds to each settlement's ledger insert."""
    from django.db import connection, transaction

    from budgets.partitions import TABLE, partitions
    from llmops.models import Team

    team = Team.objects.get_or_create(name="bench")[0].pk
    month = next(p for p in partitions() if p.lower is not None)
    per_row = {"ENABLE": [], "DISABLE": []}
    for state in ("ENABLE", "DISABLE") * 3:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(f"ALTER TABLE {TABLE} {state} TRIGGER USER")
            cursor.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + LOAD.format(table=TABLE),
                           {"start": month.lower, "step": 1, "rows": rows, "team": team})
            plan = cursor.fetchone()[0]
            plan = plan[0] if isinstance(plan, list) else plan
            per_row[state].append(plan["Execution Time"] * 1000 / rows)
            transaction.set_rollback(True)
    on, off = min(per_row["ENABLE"]), min(per_row["DISABLE"])
    print(f"  ledger insert per row, trigger on / off:     {on:5.1f} / {off:5.1f} µs "
          f"(+{on - off:.1f} µs; {len(partitions())} partitions probed)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="Rows in the month.")
    parser.add_argument("--insert-rows", type=int, default=20000,
                        help="Rows of the timed insert, trigger on and off.")
    parser.add_argument("--postgres",
                        default="postgres://postgres@127.0.0.1:5432/llmops_archive_bench")
    parser.add_argument("--ways", default="drop,delete",
                        help="Which archiving ways to time (default: drop,delete).")
    parser.add_argument("--keep", action="store_true", help="Keep the database afterwards.")
    args = parser.parse_args()
    _recreate(args.postgres)
    try:
        _setup_django(args.postgres)
        from django.core.management import call_command

        from budgets.partitions import partitions

        call_command("migrate", verbosity=0)
        month = partitions()[1]
        print(f"== one month ({month.name}), {args.rows:,} rows ==", flush=True)
        if "drop" in args.ways:
            print(f"  load {_fill(month, args.rows):.1f} s", flush=True)
            _archive(month.upper, args.rows, "archive by dropping the partition")
        if "delete" in args.ways:
            print(f"  load {_fill(month, args.rows):.1f} s", flush=True)
            _archive(month.upper - timedelta(microseconds=1), args.rows,
                     "archive by batched delete (5,000 a batch)")
        _insert_cost(args.insert_rows)
        # A year of months kept: every insert probes each partition's (request_id, team) index.
        from budgets.partitions import ledger_partitions_ensure

        ledger_partitions_ensure(ahead=13)
        _insert_cost(args.insert_rows)
    finally:
        if not args.keep:
            _recreate(args.postgres, drop_only=True)


if __name__ == "__main__":
    main()
