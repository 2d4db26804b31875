"""Print what the ledger's reports, admin and settlement cost at 10M and 50M rows (PostgreSQL).

    .venv/bin/python bench/ledger_scale.py [--rows 10000000 --rows 50000000] [--samples 15]
        [--postgres postgres://postgres@127.0.0.1:5432/llmops_ledger_bench] [--keep]

For each size it (re)creates the throw-away database, migrates it, makes 1,000 teams (2 users
and 2 keys each), COPYs synthetic ledger rows spread over the last 90 days (50 models, each team
using 3 of them; a realistic mix of endpoints, cache statuses, routing reasons and errors;
secondary indexes built after the load), builds the roll-ups with the product's rebuild, then
prints p50/p95 of: the dashboard page (7 and 30 days), `budget_report` (day, month), the ledger
admin changelist (default view, a team filter, page 5, a date range) and its team summary, a
roll-up rebuild of one day and its fold into the coarse grains; settlement throughput with
roll-ups on and off (bench/rollups_settle.py: three interleaved rounds, a team per thread); and
the disk size of the ledger and the roll-ups. The database is dropped at the end (unless
--keep). Numbers are printed, never asserted (bench/ rule). The data never enters CI.
"""

import argparse
import io
import os
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
TEAMS, MODELS, DAYS = 1000, 50, 90
CHUNK = 200_000


def _admin_dsn(url: str) -> tuple[str, str]:
    """Return (a DSN on the server's `postgres` database, the bench database's name)."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/postgres")), parts.path.lstrip("/")


def _recreate(url: str, *, drop_only: bool = False) -> None:
    import psycopg

    admin, name = _admin_dsn(url)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if not drop_only:
            conn.execute(f'CREATE DATABASE "{name}"')


def _setup_django(url: str) -> None:
    os.environ["DATABASE_URL"] = url
    os.environ["ALLOWED_HOSTS"] = "testserver"  # Django's test client
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "llmops.settings.test")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def _principals() -> list[tuple[int, int, int]]:
    """Create TEAMS teams with 2 users and 2 keys each; return [(key id, user id, team id)]."""
    from django.contrib.auth import get_user_model

    from llmops.models import ApiKey, Team

    teams = Team.objects.bulk_create([Team(name=f"team-{i:04d}") for i in range(TEAMS)])
    users = get_user_model().objects.bulk_create(
        [get_user_model()(username=f"user-{i:05d}") for i in range(2 * TEAMS)])
    keys = ApiKey.objects.bulk_create([
        ApiKey(team=teams[i // 2], user=users[i], prefix=f"b{i:05d}", hashed_secret="x",
               name=f"key {i}") for i in range(2 * TEAMS)])
    return [(k.pk, k.user_id, k.team_id) for k in keys]


def _ledger_chunks(rows: int, principals: list, seed: int = 7):
    """Yield COPY text chunks of `rows` synthetic ledger rows (numpy-generated columns)."""
    import numpy as np
    from django.utils import timezone

    rng = np.random.default_rng(seed)
    now = timezone.now().timestamp()
    team_weight = 1 / np.arange(1, TEAMS + 1) ** 0.8
    team_weight /= team_weight.sum()
    team_models = np.array([rng.choice(MODELS, 3, replace=False) for _ in range(TEAMS)])
    auto_team = rng.random(TEAMS) < 0.3
    price_in = rng.uniform(0.1, 5, MODELS) / 1e6
    price_out = price_in * 4
    endpoints = np.array(["chat.completions"] * 7 + ["responses"] * 2 + ["messages"])
    caches = np.array(["miss", "hit_exact", "hit_semantic", "bypass"])
    statuses = np.array(["ok", "upstream_error", "client_disconnected"])
    reasons = np.array(["auto:cheapest", "auto:quality", "auto:budget"])
    model_names = np.array([f"model-{i:02d}" for i in range(MODELS)])
    keys = np.array([p[0] for p in principals])
    users = np.array([p[1] for p in principals])
    team_ids = np.array([p[2] for p in principals])
    done = 0
    while done < rows:
        n = min(CHUNK, rows - done)
        team = rng.choice(TEAMS, n, p=team_weight)
        key = 2 * team + (rng.random(n) < 0.3)
        model = team_models[team, rng.choice(3, n, p=[0.6, 0.3, 0.1])]
        cache = caches[rng.choice(4, n, p=[0.78, 0.08, 0.09, 0.05])]
        status = statuses[rng.choice(3, n, p=[0.97, 0.02, 0.01])]
        hit = np.char.startswith(cache, "hit")
        prompt = rng.integers(20, 2000, n)
        completion = np.where(status == "ok", rng.integers(1, 800, n), 0)
        price = prompt * price_in[model] + completion * price_out[model]
        cost = np.where(hit, 0.0, price)
        saved = np.where(hit, price, 0.0)
        auto = auto_team[team]
        # Routing's saving against a reference model: auto teams' calls, some dearer (< 0).
        routing = np.where(auto & ~hit, price * rng.uniform(-0.2, 0.8, n), 0.0)
        # Shadow mode on 2% of requests: a would-hit on a tenth, a would-route on half.
        shadow = rng.random(n) < 0.02
        would_hit = shadow & (rng.random(n) < 0.1)
        would_route = shadow & ~would_hit & (rng.random(n) < 0.5)
        shadow_model = np.where(would_route, model_names[rng.choice(MODELS, n)], "")
        served = model_names[model]
        requested = np.where(auto, "auto", served)
        reason = np.where(auto, reasons[rng.choice(3, n, p=[0.7, 0.2, 0.1])], "")
        stream = rng.random(n) < 0.3
        latency = rng.integers(80, 5000, n)
        ttft = np.where(stream, (latency // 4).astype(str), "\\N")
        created = now - rng.random(n) * DAYS * 86400
        stamps = np.datetime_as_string((created * 1e6).astype("datetime64[us]"), unit="us")
        http = np.where(status == "upstream_error", "502", "200")
        error = np.where(status == "upstream_error", "http_500", "")
        columns = [
            [f"b{done + i:x}" for i in range(n)], np.char.add(stamps, "+00"),
            keys[key].astype(str), users[key].astype(str), team_ids[key].astype(str),
            endpoints[key % 10], requested, served, ["[]"] * n, reason, prompt.astype(str),
            completion.astype(str), ["0"] * n, ["0"] * n, prompt.astype(str),
            _usd(price * 1.5), _usd(cost), _usd(saved + routing), _usd(saved),
            np.where(routing != 0, "reference", ""), _usd(routing), np.where(shadow, "t", "f"),
            np.where(would_hit, "hit_exact", ""), [""] * n, ["\\N"] * n, shadow_model,
            _usd(np.where(would_hit, cost, 0.0)),
            _usd(np.where(would_route, cost * 0.4, 0.0)), cache, ["\\N"] * n,
            np.where(stream, "t", "f"),
            latency.astype(str), ttft, ["\\N"] * n, status, error, http,
        ]
        # Python lists: iterating numpy string arrays element by element is ten times slower.
        columns = [c.tolist() if hasattr(c, "tolist") else c for c in columns]
        yield "".join("\t".join(row) + "\n" for row in zip(*columns, strict=True)).encode()
        done += n


def _usd(amounts):
    """USD floats as exact numeric literals in 1e-12 units (PostgreSQL reads "123e-12"); much
    faster than printf-formatting each one."""
    import numpy as np

    return np.char.add(np.rint(amounts * 1e12).astype(np.int64).astype(str), "e-12")


COPY_COLUMNS = ("request_id", "created_at", "api_key_id", "user_id", "team_id", "endpoint",
                "requested_model", "served_model", "attempted_models", "routing_reason",
                "prompt_tokens", "completion_tokens", "cached_tokens", "reasoning_tokens",
                "estimated_prompt_tokens", "estimated_cost", "cost", "cost_saved",
                "cache_saved", "reference_model", "routing_saved", "shadow",
                "shadow_cache_status", "shadow_cache_entry", "shadow_cache_similarity",
                "shadow_model", "shadow_cache_saved", "shadow_routing_saved", "cache_status",
                "cache_similarity", "stream", "latency_ms", "ttft_ms",
                "upstream_latency_ms", "status", "error_kind", "http_status")


def _load_ledger(rows: int, principals: list) -> dict:
    """COPY the rows with the ledger's secondary indexes and constraints dropped, then rebuild
    them (a bulk load's usual shape); return the seconds each step took."""
    from django.db import connection

    table = "budgets_usagerecord"
    with connection.cursor() as cursor:
        cursor.execute("SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
                       "WHERE conrelid = %s::regclass AND contype IN ('u', 'f')", [table])
        constraints = cursor.fetchall()
        cursor.execute("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s AND "
                       "indexname NOT IN (SELECT conname FROM pg_constraint)", [table])
        indexes = cursor.fetchall()
        for name, _ in constraints:
            cursor.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
        for name, _ in indexes:
            cursor.execute(f'DROP INDEX "{name}"')
        # The per-team request-id trigger (budgets.partitions) would probe a dropped index for
        # every row: the generated ids are unique anyway.
        cursor.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")
    started = time.perf_counter()
    raw = connection.connection
    with raw.cursor() as cursor:
        with cursor.copy(f"COPY {table} ({', '.join(COPY_COLUMNS)}) FROM STDIN") as copy:
            for i, chunk in enumerate(_ledger_chunks(rows, principals)):
                copy.write(chunk)
                if i % 10 == 0:
                    print(f"    copied {min((i + 1) * CHUNK, rows):>11,} rows", flush=True)
    raw.commit()
    copied = time.perf_counter() - started
    started = time.perf_counter()
    with connection.cursor() as cursor:
        for _, definition in indexes:
            # A partitioned table's index reads `ON ONLY`, which would build no partition's.
            cursor.execute(definition.replace(" ON ONLY ", " ON "))
        for name, definition in constraints:
            cursor.execute(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}')
        cursor.execute(f"ALTER TABLE {table} ENABLE TRIGGER USER")
        cursor.execute(f"ANALYZE {table}")
    return {"copy": copied, "index": time.perf_counter() - started}


def _timed(fn, samples: int) -> tuple[float, float]:
    fn()  # warm
    times = []
    for _ in range(samples):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return statistics.median(times), times[min(len(times) - 1, int(len(times) * 0.95))]


def _measure(rows: int, samples: int, settle_requests: int) -> list[tuple[str, str]]:
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.utils import timezone

    from budgets.models import UsageRecord
    from budgets.rollups import day_start, rollups_rebuild

    out: list[tuple[str, str]] = []
    staff = (get_user_model().objects.filter(username="bench-admin").first()
             or get_user_model().objects.create_superuser("bench-admin", "a@b.example", "pw"))
    client = Client()
    client.force_login(staff)

    def page(url: str):
        def get():
            response = client.get(url)
            assert response.status_code == 200, (url, response.status_code)
        return get

    some_team = UsageRecord.objects.order_by("-created_at").values_list("team_id", flat=True)[0]
    today = day_start(timezone.now())
    week_ago = (today - timedelta(days=7)).date().isoformat()
    checks = [
        ("dashboard (30 days, default)", page("/dashboard/")),
        ("dashboard (7 days)", page("/dashboard/?days=7")),
        ("budget_report --period month", lambda: call_command(
            "budget_report", "--period", "month", stdout=io.StringIO())),
        ("budget_report --period day", lambda: call_command(
            "budget_report", "--period", "day", stdout=io.StringIO())),
        ("savings_report --since 30d", lambda: call_command(
            "savings_report", "--since", "30d", stdout=io.StringIO())),
        ("admin ledger changelist", page("/admin/budgets/usagerecord/")),
        ("admin changelist, team filter", page(
            f"/admin/budgets/usagerecord/?team__id__exact={some_team}")),
        ("admin changelist, page 5", page("/admin/budgets/usagerecord/?p=5")),
        ("admin changelist, date range", page(
            f"/admin/budgets/usagerecord/?created_at__gte={week_ago}"
            f"&created_at__lt={today.date().isoformat()}")),
        ("admin team summary (30 days)", page("/admin/budgets/usagerecord/team-summary/")),
    ]
    for label, fn in checks:
        p50, p95 = _timed(fn, samples)
        out.append((label, f"{p50:8.0f} ms p50 {p95:8.0f} ms p95"))
        print(f"  {label:<34} {out[-1][1]}", flush=True)
    day = today - timedelta(days=45)
    p50, p95 = _timed(lambda: rollups_rebuild(since=day, until=day + timedelta(days=1)),
                      max(3, samples // 5))
    out.append(("roll-up rebuild of one day", f"{p50:8.0f} ms p50 {p95:8.0f} ms p95"))
    print(f"  {out[-1][0]:<34} {out[-1][1]}", flush=True)
    # What the beat's fold of a day costs: its coarse rows from its day rows.
    p50, p95 = _timed(lambda: rollups_rebuild(since=day, until=day + timedelta(days=1),
                                              coarse_only=True), max(3, samples // 5))
    out.append(("roll-up fold of one day", f"{p50:8.0f} ms p50 {p95:8.0f} ms p95"))
    print(f"  {out[-1][0]:<34} {out[-1][1]}", flush=True)
    from bench.rollups_settle import compare

    for threads in (1, 4):
        out.append((f"settlement, {threads} thread(s), teams", compare(
            rounds=3, requests=settle_requests, threads=threads, one_team=False)))
        print(f"  {out[-1][0]:<34} {out[-1][1]}", flush=True)
    with connection.cursor() as cursor:
        for table in ("budgets_usagerecord", "budgets_usagerollup"):
            # Summed over the partitions (a partitioned table's own size is 0 bytes).
            cursor.execute("SELECT pg_size_pretty(sum(pg_total_relation_size(t.relid))), "
                           "sum(greatest(c.reltuples, 0))::bigint "
                           "FROM pg_partition_tree(%s::regclass) t "
                           "JOIN pg_class c ON c.oid = t.relid WHERE t.isleaf", [table])
            size, tuples = cursor.fetchone()
            out.append((f"disk: {table}", f"{size} ({tuples:,} rows)"))
            print(f"  {out[-1][0]:<34} {out[-1][1]}", flush=True)
    return out


def _run_size(rows: int, url: str, samples: int, settle_requests: int,
              measure_only: bool = False) -> None:
    """Run one size in a fresh interpreter (Django is configured once per process)."""
    from django.core.management import call_command
    from django.utils import timezone

    from budgets.rollups import day_start, rollups_rebuild

    print(f"\n== {rows:,} ledger rows ==", flush=True)
    call_command("migrate", verbosity=0)
    if measure_only:
        _measure(rows, samples, settle_requests)
        return
    principals = _principals()
    took = _load_ledger(rows, principals)
    print(f"  COPY {took['copy']:.0f} s, indexes and constraints {took['index']:.0f} s",
          flush=True)
    started = time.perf_counter()
    now = timezone.now()
    written = rollups_rebuild(since=day_start(now) - timedelta(days=DAYS),
                              until=day_start(now) + timedelta(days=1))
    print(f"  roll-ups built from the ledger: {written:,} rows in "
          f"{time.perf_counter() - started:.0f} s", flush=True)
    _measure(rows, samples, settle_requests)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, action="append",
                        help="Ledger rows (repeat for several sizes; default 10,000,000).")
    parser.add_argument("--samples", type=int, default=15, help="Timed runs per measurement.")
    parser.add_argument("--settle-requests", type=int, default=1000,
                        help="Requests per settlement-throughput run.")
    parser.add_argument("--postgres", default=os.environ.get(
        "BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/llmops_ledger_bench"),
        help="The throw-away database (dropped and created for every size).")
    parser.add_argument("--keep", action="store_true", help="Keep the last database.")
    parser.add_argument("--measure-only", action="store_true",
                        help="Measure a database kept by an earlier --keep run (one size).")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _setup_django(args.postgres)
        _run_size(args.child, args.postgres, args.samples, args.settle_requests,
                  args.measure_only)
        return
    import subprocess

    sizes = args.rows or [10_000_000]
    child = [sys.executable, __file__, "--samples", str(args.samples), "--settle-requests",
             str(args.settle_requests), "--postgres", args.postgres]
    if args.measure_only:
        subprocess.run([*child, "--child", str(sizes[0]), "--measure-only"], check=False,
                       cwd=ROOT)
        if not args.keep:
            _recreate(args.postgres, drop_only=True)
        return
    try:
        for i, rows in enumerate(sizes):
            _recreate(args.postgres)
            subprocess.run([*child, "--child", str(rows)], check=False, cwd=ROOT)
            if i < len(sizes) - 1 or not args.keep:
                _recreate(args.postgres, drop_only=True)
    except KeyboardInterrupt:
        if not args.keep:
            _recreate(args.postgres, drop_only=True)
        raise


if __name__ == "__main__":
    main()
