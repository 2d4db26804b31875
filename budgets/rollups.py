"""Roll-ups of the ledger: per hour and per UTC day sums that reports read instead of raw rows.

Each ledger row adds itself to its hour's and its day's `UsageRollup` rows, which keep every
dimension, in the same statement (PostgreSQL settlement) or transaction (every other ledger
write) that writes it, so those are never behind nor ahead of the ledger. The two coarse day
grains (`GRAIN_DIMENSIONS`) keep a few dimensions and collapse the rest, so that a report over
many days reads a few rows per day (per key, per model) instead of every combination of who
and what. They are not added to inline: a per-model row is shared by every team using that
model, and every settlement for the model would queue on it across its commit's WAL flush. A
day is folded into them from its day rows once it is over (`rollups_fold`, Celery beat; it
catches up on every day missed), and readers (`rollups_since`) take the folded days from the
coarse rows and the rest, today included, from the day rows. A ledger row written late for a
day already folded (a stream admitted before midnight, the stale sweep) adds to that day's
coarse rows too. `rollups_rebuild` recomputes a range from the ledger; archiving raw rows
leaves roll-ups alone.

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

from django.db import connection, models, transaction
from django.db.models import Aggregate, Count, Min, Q, QuerySet, Subquery, Sum, Value
from django.db.models.functions import Coalesce, TruncHour
from django.utils import timezone

from budgets.models import RollupFold, RollupGrain, UsageRecord, UsageRollup
from llmops import raw_rows

# Settlement adds to the roll-ups. Only bench/rollups_settle.py turns it off, to measure its cost.
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
# What a ledger row of a day not yet folded adds to (one team's, one key's, one model's rows).
INLINE_GRAINS = (RollupGrain.HOUR.value, RollupGrain.DAY.value)
# A day is folded this long after it ends at the earliest: a settlement that judged its row's
# day current (`grains_of`) by a clock a little behind the folder's still finds it unfolded.
FOLD_DELAY = timedelta(minutes=10)

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


def grains_of(record: UsageRecord, *, now: datetime | None = None) -> tuple[str, ...]:
    """Return the grains `record` is added to as it is written: the hour and day grains, and,
    if its day is over (a late row), the coarse grains too, which take it only if that day is
    folded already (`_late_sql`, or the caller reads `folded_until` under SQLite's write lock)."""
    if day_start(record.created_at) < day_start(now or timezone.now()):
        return tuple(RollupGrain.values)
    return INLINE_GRAINS


def folded_until() -> datetime | None:
    """Return the start of the first UTC day not folded into the coarse grains (None: none)."""
    return RollupFold.objects.filter(pk=1).values_list("folded_until", flat=True).first()


def _late_sql(grain: str) -> str:
    """Return the SQL condition that keeps a row of `grain` (SQL) only if it is not coarse or
    its day is folded: read in the statement that adds it, whose lock on the roll-up table
    waits out a fold in progress (the fold locks the table against writes, `rollups_fold`)."""
    qn = connection.ops.quote_name
    inline = ", ".join(f"'{g}'" for g in INLINE_GRAINS)
    return (f"({grain} IN ({inline}) OR {qn('start')} < (SELECT {qn('folded_until')} FROM "
            f"{qn(RollupFold._meta.db_table)}))")


@cache
def _upsert_sql(grains: tuple[str, ...]) -> str:
    """Return the upsert of the rows (one per grain of `grains`) of one ledger row: named
    parameters `<grain>_<column>` (`upsert_params`)."""
    qn = connection.ops.quote_name
    table = qn(UsageRollup._meta.db_table)
    columns = ", ".join(qn(_field(c).column) for c in _COLUMNS)
    rows = [", ".join(f"%({g}_{c})s" for c in _COLUMNS) for g in grains]
    # Rows in grain order, one per grain: every writer locks roll-up rows in the same order.
    values = "VALUES " + ", ".join(f"({r})" for r in rows)
    return (f"INSERT INTO {table} ({columns}) {values} "
            f"ON CONFLICT ({qn('bucket')}) DO UPDATE SET {_adds(table)}")


def _field(column: str):
    # DIMENSIONS name foreign keys by their attribute ("team_id"); the field is "team".
    return UsageRollup._meta.get_field(column.removesuffix("_id"))


def _buckets(record: UsageRecord,
             grains: Iterable[str]) -> Iterator[tuple[str, datetime, list, str]]:
    """Yield (grain, start, dimension values, bucket) of the roll-up rows of `grains` that
    `record` adds to."""
    dims = _row_dims(record)
    for grain in grains:
        start, kept = grain_start(grain, record.created_at), grain_dims(grain, dims)
        yield grain, start, kept, bucket_key(grain, start, kept)


def upsert_rows(record: UsageRecord, grains: tuple[str, ...], *,
                sign: int = 1) -> list[tuple[str, dict]]:
    """Return (grain, {column: value}) of each roll-up row of `grains` that `record` adds to
    (`sign` 1) or takes back from (-1), in grain order: the one order every writer locks them
    in."""
    measures = {m.column: sign * m.of_row(record) for m in MEASURES}
    return [(grain, {"bucket": bucket, "grain": grain, "start": start,
                     **dict(zip(DIMENSIONS, dims, strict=True)), **measures})
            for grain, start, dims, bucket in _buckets(record, grains)]


def upsert_params(record: UsageRecord, grains: tuple[str, ...], *, sign: int = 1) -> dict:
    """Return the parameters of `_upsert_sql(grains)` that add (`sign` 1) or take back (-1)
    `record`."""
    return {f"{prefix}_{column}": _field(column).get_db_prep_save(value, connection)
            for prefix, values in upsert_rows(record, grains, sign=sign)
            for column, value in values.items()}


def pg_settlement_upsert(param: str, *, late: bool, source: str | None = None,
                         condition: str | None = None) -> str:
    """Return the upsert of one ledger row's roll-ups on PostgreSQL, its rows read from the one
    JSON parameter `param` (`pg_settlement_rows`): a parameter per column (35 per grain) made
    psycopg quote each and re-parse the statement on every run. `late`: the rows include the
    coarse grains' (`grains_of`), kept only if their day is folded. With `source` (and its
    `condition`), a CTE body that adds the rows only if `source` has one (the settlement
    statement's inserted ledger row)."""
    qn = connection.ops.quote_name
    table = qn(UsageRollup._meta.db_table)
    columns = ", ".join(qn(_field(c).column) for c in _COLUMNS)
    joined = f", {source}" if source else ""
    conditions = [c for c in (condition, _late_sql(qn("grain")) if late else None) if c]
    where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
    return (f"INSERT INTO {table} ({columns}) SELECT {columns} FROM "
            f"jsonb_populate_recordset(NULL::{table}, %({param})s::jsonb){joined}{where} "
            f"ON CONFLICT ({qn('bucket')}) DO UPDATE SET {_adds(table)}")


def pg_settlement_rows(record: UsageRecord, grains: tuple[str, ...], *, sign: int = 1) -> str:
    """Return `pg_settlement_upsert`'s parameter: `record`'s roll-up rows of `grains` as a JSON
    array."""
    return raw_rows.pg_json([raw_rows.json_values(values)
                             for _, values in upsert_rows(record, grains, sign=sign)])


@cache
def _pg_upsert_sql(late: bool) -> str:
    return pg_settlement_upsert("rollups", late=late)


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
    grains = grains_of(record)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            late = grains != INLINE_GRAINS
            cursor.execute(_pg_upsert_sql(late),
                           {"rollups": pg_settlement_rows(record, grains, sign=sign)})
        else:
            if grains != INLINE_GRAINS:
                # The transaction holds SQLite's write lock (it wrote the ledger row): no fold
                # can commit between this read and the upsert.
                folded = folded_until()
                if folded is None or day_start(record.created_at) >= folded:
                    grains = INLINE_GRAINS
            cursor.execute(_upsert_sql(grains), upsert_params(record, grains, sign=sign))
        if sign < 0:
            # A bucket taken back to nothing goes, as a rebuild would leave it.
            buckets = [bucket for *_, bucket in _buckets(record, grains)]
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
    grains from its day rows if the day is folded (`rollups_fold` folds the others when they
    are over). Hours whose ledger rows were archived come back empty: rebuild only what the
    ledger still holds. `coarse_only` recomputes only the coarse grains from the day rows (safe
    on archived days too).
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
            if not coarse_only:
                written += _rebuild_window(RollupGrain.DAY, day, day + timedelta(days=1))
            written += _rebuild_coarse(day, fold=False)
    return written


def rollups_fold(*, now: datetime | None = None) -> int:
    """Fold every UTC day over (by FOLD_DELAY) and not folded yet into the coarse grains, from
    its day rows, oldest first; return how many days were folded. With nothing folded yet, start
    at the first day row. Each day in its own transaction, under the rebuild's table lock."""
    end = day_start((now or timezone.now()) - FOLD_DELAY)
    folded = 0
    while True:
        with transaction.atomic():
            _lock_for_rebuild()
            day = folded_until()
            if day is None:
                first = UsageRollup.objects.filter(grain=RollupGrain.DAY).aggregate(
                    first=Min("start"))["first"]
                day = min(end, first or end)
                RollupFold.objects.create(pk=1, folded_until=day)
            if day >= end:
                return folded
            _rebuild_coarse(day, fold=True)
        folded += 1


def _rebuild_coarse(day: datetime, *, fold: bool) -> int:
    """Recompute the coarse rows of `day` from its day rows if it is folded (or, `fold`, fold
    it: it is the first day not folded); an unfolded day has none. Return the rows written."""
    with transaction.atomic():
        _lock_for_rebuild()  # before reading how far is folded: a fold in progress finishes
        until = folded_until()
        if not fold and (until is None or day >= until):
            UsageRollup.objects.filter(grain__in=COARSE_GRAINS, start=day).delete()
            return 0
        written = sum(_rebuild_window(grain, day, day + timedelta(days=1))
                      for grain in COARSE_GRAINS)
        if fold:
            RollupFold.objects.filter(pk=1).update(folded_until=day + timedelta(days=1))
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
    (`GRAIN_DIMENSIONS`): the folded days are read from its rows, the others (today, and any
    day the fold has not reached) from day rows, and hour rows, which keep every dimension and
    so sum the same way. A window of whole days reads no hour row at all."""
    first = hour_start(since)
    first_day = day_start(first) if first == day_start(first) else day_start(first) + timedelta(
        days=1)
    if until is None:
        whole = _whole_days(days) & Q(start__gte=first_day)
        hours = Q(grain=RollupGrain.HOUR, start__gte=first, start__lt=first_day)
        return UsageRollup.objects.filter(whole | hours)
    last = hour_start(until - timedelta(microseconds=1)) + timedelta(hours=1)
    last_day = day_start(last)
    if last_day <= first_day:
        return UsageRollup.objects.filter(grain=RollupGrain.HOUR, start__gte=first,
                                          start__lt=last)
    return UsageRollup.objects.filter(
        (_whole_days(days) & Q(start__gte=first_day, start__lt=last_day))
        | Q(grain=RollupGrain.HOUR, start__gte=first, start__lt=first_day)
        | Q(grain=RollupGrain.HOUR, start__gte=last_day, start__lt=last))


_NEVER = datetime(1970, 1, 1, tzinfo=UTC)


def _whole_days(days: str) -> Q:
    """Return the rows of whole days of the grain `days`: for a coarse grain, its rows of the
    folded days and the day rows of the others, split in the query itself (one round trip)."""
    if days not in COARSE_GRAINS:
        return Q(grain=days)
    folded = Coalesce(Subquery(RollupFold.objects.filter(pk=1).values("folded_until")[:1]),
                      Value(_NEVER), output_field=models.DateTimeField())
    return Q(grain=days, start__lt=folded) | Q(grain=RollupGrain.DAY, start__gte=folded)
