"""Roll-ups of the ledger: per hour and per UTC day sums that reports read instead of raw rows.

Each ledger row adds itself to four `UsageRollup` rows in the same statement (PostgreSQL
settlement) or transaction (every other ledger write) that writes it, so a roll-up is never
behind nor ahead of the ledger: its hour's and its day's, which keep every dimension, and its
day's rows of the two coarse grains (`GRAIN_DIMENSIONS`), which keep a few and collapse the
rest, so that a report over many days reads a few rows per day (per key, per model) instead of
every combination of who and what. `rollups_rebuild` recomputes a range from the ledger;
archiving raw rows leaves roll-ups alone.

What is summed is `MEASURES`, one entry per roll-up column: a sum added later (savings by source,
say) is a column on `UsageRollup`, a migration and one entry here; the upsert, the rebuild and
the tests derive from the list.
"""

import hashlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import cache

from django.db import connection, transaction
from django.db.models import Aggregate, Count, Q, QuerySet, Sum
from django.db.models.functions import TruncHour

from budgets.models import RollupGrain, UsageRecord, UsageRollup
from llmops import raw_rows

# Settlement adds to the roll-ups. Only bench/ledger_scale.py turns it off, to measure its cost.
INLINE = True

# The ledger columns a roll-up groups by (the same names on both models).
DIMENSIONS = ("team_id", "api_key_id", "user_id", "endpoint", "requested_model", "served_model",
              "routing_reason", "cache_status", "status", "shadow_cache_status", "shadow_model")

# What each grain keeps of DIMENSIONS; a coarse grain's other dimensions are collapsed (NULL for
# ids, '' for text). Per key: who spent (a key has one user and one team). Per model: what was
# served and how (cache, routing, status, shadow mode) across every team.
GRAIN_DIMENSIONS: dict[str, tuple[str, ...]] = {
    RollupGrain.HOUR: DIMENSIONS,
    RollupGrain.DAY: DIMENSIONS,
    RollupGrain.DAY_BY_KEY: ("team_id", "api_key_id", "user_id"),
    RollupGrain.DAY_BY_MODEL: ("served_model", "routing_reason", "cache_status", "status",
                               "shadow_cache_status", "shadow_model"),
}
COARSE_GRAINS = (RollupGrain.DAY_BY_KEY, RollupGrain.DAY_BY_MODEL)

_HIT_STATUSES = ("hit_exact", "hit_semantic")


@dataclass(frozen=True)
class Measure:
    """One roll-up column: what one ledger row adds to it, and the same as an aggregate."""

    column: str
    of_row: Callable[[UsageRecord], int | Decimal]
    aggregate: Callable[[], Aggregate]


def _sum(name: str) -> Measure:
    return Measure(name, lambda row: getattr(row, name) or 0, lambda: Sum(name))


def _sum_if(column: str, field: str, test: Callable[[UsageRecord], bool], condition: Q) -> Measure:
    """A sum of `field` over the rows `test` (in Python) and `condition` (in SQL) accept."""
    return Measure(column, lambda row: (getattr(row, field) or 0) if test(row) else 0,
                   lambda: Sum(field, filter=condition))


def _count_if(column: str, test: Callable[[UsageRecord], bool], condition: Q) -> Measure:
    return Measure(column, lambda row: int(test(row)), lambda: Count("id", filter=condition))


def _hit(row: UsageRecord) -> bool:
    return row.cache_status in _HIT_STATUSES


_HIT = Q(cache_status__in=_HIT_STATUSES)


MEASURES: tuple[Measure, ...] = (
    Measure("request_count", lambda row: 1, lambda: Count("id")),
    _sum("prompt_tokens"),
    _sum("completion_tokens"),
    _sum("cached_tokens"),
    _sum("reasoning_tokens"),
    _sum("estimated_cost"),
    _sum("cost"),
    _sum("cost_saved"),
    Measure("latency_ms_sum", lambda row: row.latency_ms or 0, lambda: Sum("latency_ms")),
    Measure("latency_count", lambda row: int(row.latency_ms is not None),
            lambda: Count("latency_ms")),
    Measure("ttft_ms_sum", lambda row: row.ttft_ms or 0, lambda: Sum("ttft_ms")),
    Measure("ttft_count", lambda row: int(row.ttft_ms is not None), lambda: Count("ttft_ms")),
    # Savings by source (llmops/observability/savings.py reads these).
    _sum("cache_saved"),
    _sum("routing_saved"),
    _sum_if("routing_extra_cost", "routing_saved", lambda row: row.routing_saved < 0,
            Q(routing_saved__lt=0)),
    _count_if("shadow_requests", lambda row: row.shadow, Q(shadow=True)),
    _sum_if("shadow_cache_saved", "shadow_cache_saved", lambda row: row.shadow, Q(shadow=True)),
    _sum_if("shadow_routing_saved", "shadow_routing_saved", lambda row: row.shadow,
            Q(shadow=True)),
    # What the per-key grain has no cache or status dimension for.
    _count_if("hits", _hit, _HIT),
    _sum_if("hit_cost_saved", "cost_saved", _hit, _HIT),
    _count_if("errors", lambda row: row.status != "ok", ~Q(status="ok")),
)


def hour_start(moment: datetime) -> datetime:
    """Return the start of `moment`'s UTC hour."""
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def day_start(moment: datetime) -> datetime:
    """Return the start of `moment`'s UTC day."""
    return hour_start(moment).replace(hour=0)


def bucket_key(grain: str, start: datetime, dims: Iterable) -> str:
    """Return the unique key of the roll-up row of `grain` starting at `start` for `dims`
    (values in `DIMENSIONS` order). PostgreSQL computes the same digest (`_pg_bucket_sql`)."""
    text = _SEP.join([grain, start.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S"),
                      *map(_dim_text, dims)])
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


_SEP, _NULL = "\x1f", "\x1e"  # unit and record separators: in no model name or reason


def _dim_text(value) -> str:
    return _NULL if value is None else str(value)


def _pg_bucket_sql(grain: str, start: str, dims: Iterable[str]) -> str:
    """Return PostgreSQL's `bucket_key` of SQL expressions `start` and `dims` (text-castable)."""
    parts = [f"'{grain}'", f"to_char({start} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS')",
             *(f"coalesce(({d})::text, chr(30))" for d in dims)]
    return f"md5(concat_ws(chr(31), {', '.join(parts)}))"


def _row_dims(record: UsageRecord) -> list:
    return [getattr(record, name) for name in DIMENSIONS]


def collapsed(name: str) -> None | str:
    """Return the value a coarse grain gives the dimension `name` it does not keep."""
    return None if name.endswith("_id") else ""


def grain_dims(grain: str, dims: Iterable) -> list:
    """Return the full-grain dimension values `dims` (DIMENSIONS order) as `grain` keeps them."""
    kept = GRAIN_DIMENSIONS[grain]
    return [v if name in kept else collapsed(name)
            for name, v in zip(DIMENSIONS, dims, strict=True)]


def grain_start(grain: str, moment: datetime) -> datetime:
    """Return the start of the hour or UTC day of `grain` that holds `moment`."""
    return hour_start(moment) if grain == RollupGrain.HOUR else day_start(moment)


# --- Adding ledger rows as they are written ------------------------------------------------------

_COLUMNS = ("bucket", "grain", "start", *DIMENSIONS, *(m.column for m in MEASURES))


@cache
def _upsert_sql() -> str:
    """Return the upsert of the rows (one per grain) of one ledger row: named parameters
    `<grain>_<column>` (`upsert_params`)."""
    qn = connection.ops.quote_name
    table = qn(UsageRollup._meta.db_table)
    columns = ", ".join(qn(_field(c).column) for c in _COLUMNS)
    rows = [", ".join(f"%({g}_{c})s" for c in _COLUMNS) for g in RollupGrain.values]
    # Rows in grain order, one per grain: every writer locks roll-up rows in the same order.
    values = "VALUES " + ", ".join(f"({r})" for r in rows)
    return (f"INSERT INTO {table} ({columns}) {values} "
            f"ON CONFLICT ({qn('bucket')}) DO UPDATE SET {_adds(table)}")


def _field(column: str):
    # DIMENSIONS name foreign keys by their attribute ("team_id"); the field is "team".
    return UsageRollup._meta.get_field(column.removesuffix("_id"))


def _buckets(record: UsageRecord) -> Iterator[tuple[str, datetime, list, str]]:
    """Yield (grain, start, dimension values, bucket) of each roll-up row `record` adds to."""
    dims = _row_dims(record)
    for grain in RollupGrain.values:
        start, kept = grain_start(grain, record.created_at), grain_dims(grain, dims)
        yield grain, start, kept, bucket_key(grain, start, kept)


def upsert_rows(record: UsageRecord, *, sign: int = 1) -> list[tuple[str, dict]]:
    """Return (grain, {column: value}) of each roll-up row that `record` adds to (`sign` 1) or
    takes back from (-1), in grain order: the one order every writer locks them in."""
    measures = {m.column: sign * m.of_row(record) for m in MEASURES}
    return [(grain, {"bucket": bucket, "grain": grain, "start": start,
                     **dict(zip(DIMENSIONS, dims, strict=True)), **measures})
            for grain, start, dims, bucket in _buckets(record)]


def upsert_params(record: UsageRecord, *, sign: int = 1) -> dict:
    """Return the parameters of `_upsert_sql` that add (`sign` 1) or take back (-1) `record`."""
    return {f"{prefix}_{column}": _field(column).get_db_prep_save(value, connection)
            for prefix, values in upsert_rows(record, sign=sign)
            for column, value in values.items()}


def pg_settlement_upsert(source: str | None, param: str) -> str:
    """Return the upsert of one ledger row's roll-ups on PostgreSQL, its rows read from the one
    JSON parameter `param` (`pg_settlement_rows`): a parameter per column (35 per grain) made
    psycopg quote each and re-parse the statement on every run. With `source`, a CTE body that
    adds the rows only if `source` has one (the settlement statement's inserted ledger row)."""
    qn = connection.ops.quote_name
    table = qn(UsageRollup._meta.db_table)
    columns = ", ".join(qn(_field(c).column) for c in _COLUMNS)
    joined = f", {source}" if source else ""
    return (f"INSERT INTO {table} ({columns}) SELECT {columns} FROM "
            f"jsonb_populate_recordset(NULL::{table}, %({param})s::jsonb){joined} "
            f"ON CONFLICT ({qn('bucket')}) DO UPDATE SET {_adds(table)}")


def pg_settlement_rows(record: UsageRecord, *, sign: int = 1) -> str:
    """Return `pg_settlement_upsert`'s parameter: `record`'s roll-up rows as a JSON array."""
    return raw_rows.pg_json([raw_rows.json_values(values)
                             for _, values in upsert_rows(record, sign=sign)])


@cache
def _pg_upsert_sql() -> str:
    return pg_settlement_upsert(None, "rollups")


def _adds(table: str) -> str:
    qn = connection.ops.quote_name
    return ", ".join(f"{qn(m.column)} = {table}.{qn(m.column)} + excluded.{qn(m.column)}"
                     for m in MEASURES)


def rollups_add(record: UsageRecord, *, sign: int = 1) -> None:
    """Add the saved ledger row `record` to its roll-ups (`sign=-1`: take it back, for the one
    ledger row that is ever replaced). Call inside the transaction that writes or deletes the
    row, after the budget counters are locked (one lock order for everybody)."""
    if not INLINE:
        return
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(_pg_upsert_sql(), {"rollups": pg_settlement_rows(record, sign=sign)})
        else:
            cursor.execute(_upsert_sql(), upsert_params(record, sign=sign))
        if sign < 0:
            # A bucket taken back to nothing goes, as a rebuild would leave it.
            buckets = [bucket for *_, bucket in _buckets(record)]
            UsageRollup.objects.filter(bucket__in=buckets, request_count=0).delete()


# --- Rebuilding from the ledger ------------------------------------------------------------------


def _hours(since: datetime, until: datetime) -> Iterator[datetime]:
    hour = hour_start(since)
    while hour < until:
        yield hour
        hour += timedelta(hours=1)


def rollups_rebuild(*, since: datetime, until: datetime, coarse_only: bool = False,
                    progress: Callable[[datetime], None] | None = None) -> int:
    """Recompute the roll-ups of the UTC days touching [since, until) from the ledger; return
    how many roll-up rows were written. Idempotent.

    Hour by hour, each in its own short transaction that locks the roll-up table against
    writes (settlements of that moment wait for one hour's aggregate, then add to the rebuilt
    rows, so none is lost or counted twice); then each day from its hours, and the day's coarse
    grains from its day rows. Hours whose ledger rows were archived come back empty: rebuild
    only what the ledger still holds. `coarse_only` recomputes only the coarse grains from the
    day rows (safe on archived days too).
    """
    since, until = day_start(since), day_start(until - timedelta(microseconds=1)) + timedelta(
        days=1)
    written = 0
    for hour in _hours(since, until):
        if not coarse_only:
            written += _rebuild_window(RollupGrain.HOUR, hour, hour + timedelta(hours=1))
        if progress is not None:
            progress(hour)
        if hour.hour == 23:
            day = day_start(hour)
            grains = COARSE_GRAINS if coarse_only else (RollupGrain.DAY, *COARSE_GRAINS)
            for grain in grains:
                written += _rebuild_window(grain, day, day + timedelta(days=1))
    return written


def _rebuild_window(grain: str, start: datetime, end: datetime) -> int:
    with transaction.atomic():
        _lock_for_rebuild()
        UsageRollup.objects.filter(grain=grain, start__gte=start, start__lt=end).delete()
        if grain == RollupGrain.HOUR:
            source = _aggregate_ledger(start, end)
        else:
            source = _aggregate_rollups(RollupGrain.HOUR if grain == RollupGrain.DAY
                                        else RollupGrain.DAY, start, end, grain)
        if connection.vendor == "postgresql":
            return _insert_aggregates_pg(grain, start, source)
        rows = [_rollup_row(grain, start if grain != RollupGrain.HOUR else row["start"], row)
                for row in source]
        UsageRollup.objects.bulk_create(rows, batch_size=1000)
    return len(rows)


def _insert_aggregates_pg(grain: str, start: datetime, source: QuerySet) -> int:
    """Insert the grouped rows of `source` as roll-ups in one statement, without a round trip
    through Python (a day of a busy ledger is hundreds of thousands of groups)."""
    qn = connection.ops.quote_name
    sql, params = source.query.sql_with_params()
    start_sql = "s.start" if grain == RollupGrain.HOUR else "%s::timestamptz"
    kept = GRAIN_DIMENSIONS[grain]
    dims = [f"s.{qn(d)}" if d in kept else ("NULL::bigint" if collapsed(d) is None else "''")
            for d in DIMENSIONS]
    bucket = _pg_bucket_sql(grain, start_sql, dims)
    columns = ", ".join(qn(_field(c).column) for c in _COLUMNS)
    measures = ", ".join(f"coalesce(s.{qn(_AS + m.column)}, 0)" for m in MEASURES)
    extra = [] if grain == RollupGrain.HOUR else [start, start]
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {qn(UsageRollup._meta.db_table)} ({columns}) "
            f"SELECT {bucket}, %s, {start_sql}, {', '.join(dims)}, {measures} FROM ({sql}) s",
            [*extra[:1], grain, *extra[1:], *params])
        return cursor.rowcount


def _lock_for_rebuild() -> None:
    if connection.vendor == "postgresql":
        # Blocks inserts and updates (settlements) but not reads, for one window's aggregate.
        with connection.cursor() as cursor:
            cursor.execute(f"LOCK TABLE {connection.ops.quote_name(UsageRollup._meta.db_table)} "
                           "IN SHARE ROW EXCLUSIVE MODE")
    # SQLite: the transaction holds the database's write lock already (BEGIN IMMEDIATE).


# Aggregates are named apart from the columns they sum: a later one (hit_cost_saved) would
# otherwise read an earlier one's result (cost_saved) instead of the column.
_AS = "sum_"


def _aggregate_ledger(start: datetime, end: datetime) -> QuerySet:
    return (UsageRecord.objects.filter(created_at__gte=start, created_at__lt=end)
            .annotate(start=TruncHour("created_at")).values("start", *DIMENSIONS)
            .annotate(**{_AS + m.column: m.aggregate() for m in MEASURES}).order_by())


def _aggregate_rollups(of: str, start: datetime, end: datetime, grain: str) -> QuerySet:
    """Sum the `of` roll-up rows in [start, end) by what `grain` keeps."""
    return (UsageRollup.objects.filter(grain=of, start__gte=start, start__lt=end)
            .values(*GRAIN_DIMENSIONS[grain])
            .annotate(**{_AS + m.column: Sum(m.column) for m in MEASURES}).order_by())


def _rollup_row(grain: str, start: datetime, row: dict) -> UsageRollup:
    dims = grain_dims(grain, [row.get(name, collapsed(name)) for name in DIMENSIONS])
    return UsageRollup(bucket=bucket_key(grain, start, dims), grain=grain, start=start,
                       **dict(zip(DIMENSIONS, dims, strict=True)),
                       **{m.column: row[_AS + m.column] or 0 for m in MEASURES})


# --- Reading -------------------------------------------------------------------------------------


def rollups_since(since: datetime, until: datetime | None = None, *,
                  days: str = RollupGrain.DAY) -> QuerySet:
    """Return the roll-up rows that cover [hour of `since`, `until`) once each: whole UTC days
    as rows of the day grain `days`, the hours before the first whole day and after the last as
    hour rows.

    With a coarse `days` grain (`COARSE_GRAINS`), group only by what that grain keeps
    (`GRAIN_DIMENSIONS`): hour rows keep every dimension, so they sum the same way. A window
    of whole days reads no hour row at all."""
    first = hour_start(since)
    first_day = day_start(first) if first == day_start(first) else day_start(first) + timedelta(
        days=1)
    if until is None:
        whole = Q(grain=days, start__gte=first_day)
        hours = Q(grain=RollupGrain.HOUR, start__gte=first, start__lt=first_day)
        return UsageRollup.objects.filter(whole | hours)
    last = hour_start(until - timedelta(microseconds=1)) + timedelta(hours=1)
    last_day = day_start(last)
    if last_day <= first_day:
        return UsageRollup.objects.filter(grain=RollupGrain.HOUR, start__gte=first,
                                          start__lt=last)
    return UsageRollup.objects.filter(
        Q(grain=days, start__gte=first_day, start__lt=last_day)
        | Q(grain=RollupGrain.HOUR, start__gte=first, start__lt=first_day)
        | Q(grain=RollupGrain.HOUR, start__gte=last_day, start__lt=last))
