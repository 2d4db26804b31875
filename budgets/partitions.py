"""The ledger's monthly partitions on PostgreSQL: converting the plain table, creating months
ahead, listing them, and dropping one whose rows were archived.

On PostgreSQL `budgets_usagerecord` is a table partitioned by range of `created_at`, one
partition per UTC month (`budgets_usagerecord_y2027m01`), one for every row older than the
conversion (`budgets_usagerecord_legacy`, MINVALUE up to a month boundary) and a DEFAULT partition
that catches a row no month holds yet (so an insert never fails for want of a partition). Django
keeps its model as it was (primary key `id`, unique `(request_id, team)`): in the database the
primary key is `(id, created_at)`, since a partitioned table's unique indexes must hold the
partition key, and the per-team uniqueness of request ids is kept by a trigger (below). SQLite
keeps the plain table and its unique constraint; every function here is a no-op there.
"""

import logging
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.db import OperationalError, connection, transaction
from django.db.models import SET_NULL
from django.utils import timezone

from budgets.models import UsageRecord

logger = logging.getLogger(__name__)

TABLE = UsageRecord._meta.db_table
LEGACY = f"{TABLE}_legacy"
DEFAULT = f"{TABLE}_default"
# Rows locked to serialize writers of one (team, request id) (see _UNIQUE_TRIGGER): row locks,
# unlike advisory locks, take no slot in the shared lock table however many rows a transaction
# inserts (a bulk load of millions).
STRIPES = f"{TABLE}_request_stripe"
STRIPE_COUNT = 4096
REQUEST_INDEX = f"{TABLE}_request_team"
# How long dropping a partition may wait for its brief ACCESS EXCLUSIVE lock on the ledger before
# it gives up and tries again: requests queue behind a waiting lock, so the wait stays short.
DETACH_LOCK_TIMEOUT = "500ms"
DETACH_ATTEMPTS = 20

# Unique (team, request id) across every partition. A BEFORE INSERT trigger locks the
# (team, request id)'s stripe row until its transaction ends, then looks for the id in the whole
# ledger: a concurrent insert of the same id waits for the lock, and in READ COMMITTED each
# statement of a volatile function takes a fresh snapshot, so it then sees the first row and
# fails with the unique violation (SQLSTATE 23505) the unique index used to raise. A NULL team
# never conflicts, as with the unique index. The lookup probes the (request_id, team_id) index of
# each partition.
_UNIQUE_TRIGGER = f"""
CREATE OR REPLACE FUNCTION {TABLE}_request_id_unique() RETURNS trigger
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    IF NEW.team_id IS NULL THEN
        RETURN NEW;
    END IF;
    PERFORM 1 FROM {STRIPES}
    WHERE id = hashtext(NEW.team_id::text || ':' || NEW.request_id) & {STRIPE_COUNT - 1}
    FOR NO KEY UPDATE;
    IF EXISTS (SELECT 1 FROM {TABLE}
               WHERE request_id = NEW.request_id AND team_id = NEW.team_id) THEN
        RAISE unique_violation USING
            MESSAGE = 'duplicate key value violates unique constraint "usage_request_id_per_team"',
            DETAIL = format('Key (request_id, team_id)=(%s, %s) already exists.',
                            NEW.request_id, NEW.team_id),
            CONSTRAINT = 'usage_request_id_per_team', TABLE = '{TABLE}';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER {TABLE}_request_id_unique BEFORE INSERT ON {TABLE}
FOR EACH ROW EXECUTE FUNCTION {TABLE}_request_id_unique();
"""


@dataclass(frozen=True)
class Partition:
    """One partition of the ledger and the `created_at` range it holds ([lower, upper); None:
    unbounded; both None for the DEFAULT partition)."""

    name: str
    lower: datetime | None
    upper: datetime | None
    is_default: bool = False


def month_start(moment: datetime) -> datetime:
    """Return the start of the UTC month holding `moment`."""
    moment = moment.astimezone(UTC)
    return moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def next_month(start: datetime) -> datetime:
    return month_start(start.replace(day=1) + timedelta(days=32))


def month_name(start: datetime) -> str:
    return f"{TABLE}_y{start:%Y}m{start:%m}"


def is_partitioned() -> bool:
    """Return whether the ledger is a partitioned table (PostgreSQL after migration 0012)."""
    if connection.vendor != "postgresql":
        return False
    with connection.cursor() as cursor:
        cursor.execute("SELECT relkind = 'p' FROM pg_class WHERE oid = to_regclass(%s)", [TABLE])
        row = cursor.fetchone()
    return bool(row and row[0])


_BOUND = re.compile(r"FROM \((.+)\) TO \((.+)\)")


def _bound(text: str) -> datetime | None:
    if text == "MINVALUE" or text == "MAXVALUE":
        return None
    return datetime.fromisoformat(text.strip("'")).astimezone(UTC)


def partitions() -> list[Partition]:
    """Return the ledger's partitions, oldest range first, DEFAULT last ([] unpartitioned)."""
    if not is_partitioned():
        return []
    with connection.cursor() as cursor:
        cursor.execute("SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i "
                       "JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = %s::regclass",
                       [TABLE])
        rows = cursor.fetchall()
    out = []
    for name, bound in rows:
        if bound == "DEFAULT":
            out.append(Partition(name=name, lower=None, upper=None, is_default=True))
            continue
        lower, upper = _BOUND.search(bound).groups()
        out.append(Partition(name=name, lower=_bound(lower), upper=_bound(upper)))
    return sorted(out, key=lambda p: (p.is_default, p.lower or datetime.min.replace(tzinfo=UTC)))


def ledger_partitions_ensure(*, now: datetime | None = None, ahead: int = 2) -> list[str]:
    """Create the monthly partitions of the current UTC month and `ahead` months after it that
    do not exist yet; return the names created. Idempotent; a no-op on an unpartitioned ledger.

    A month whose rows already sit in the DEFAULT partition (nothing created it in time) is left
    there, logged: creating it would have to move them under a lock."""
    if not is_partitioned():
        return []
    have = [p for p in partitions() if not p.is_default]
    start = month_start(now or timezone.now())
    created = []
    for _ in range(ahead + 1):
        end = next_month(start)
        taken = any((p.lower is None or p.lower < end) and (p.upper is None or p.upper > start)
                    for p in have)
        if not taken:
            try:
                with transaction.atomic(), connection.cursor() as cursor:
                    cursor.execute(f"CREATE TABLE {month_name(start)} PARTITION OF {TABLE} "
                                   "FOR VALUES FROM (%s) TO (%s)", [start, end])
                created.append(month_name(start))
            except Exception:
                logger.exception("ledger partition %s not created", month_name(start))
        start = end
    return created


def convert_to_partitioned(schema_editor, *, now: datetime | None = None) -> None:
    """Migration helper: turn the plain ledger table into the partitioned one, keeping its rows
    in place as the legacy partition (see docs/ledger.md, "Upgrading"). Run outside a
    transaction (the migration is non-atomic): only the final switch holds a lock that blocks
    the ledger, for catalog changes only.
    """
    if schema_editor.connection.vendor != "postgresql":
        return
    run = schema_editor.execute
    now = now or timezone.now()
    # The legacy partition takes every row before a month boundary at least a day away, so that
    # no row written while the check below is validated can fall outside it.
    bound = next_month(month_start(now))
    if bound - now < timedelta(days=1):
        bound = next_month(bound)
    # 1. Prove the rows fit the legacy range without a long lock: NOT VALID is instant, VALIDATE
    #    scans under SHARE UPDATE EXCLUSIVE (reads and writes go on). ATTACH then skips its scan.
    # (Each step can run again: a migration that failed half-way is simply run again.)
    run(f"ALTER TABLE {TABLE} DROP CONSTRAINT IF EXISTS {LEGACY}_range")
    run(f"ALTER TABLE {TABLE} ADD CONSTRAINT {LEGACY}_range "
        f"CHECK (created_at IS NOT NULL AND created_at < %s) NOT VALID", [bound])
    run(f"ALTER TABLE {TABLE} VALIDATE CONSTRAINT {LEGACY}_range")
    # 2. The indexes the partitioned table needs that the plain one lacks, built without
    #    blocking writes: ATTACH adopts them instead of building them under its lock.
    for name, unique, columns in ((f"{LEGACY}_id_created", "UNIQUE", "id, created_at"),
                                  (f"{LEGACY}_request_team", "", "request_id, team_id")):
        # A build interrupted earlier leaves an invalid index behind: build it again.
        with schema_editor.connection.cursor() as cursor:
            cursor.execute("SELECT NOT indisvalid FROM pg_index WHERE indexrelid = to_regclass(%s)",
                           [name])
            invalid = cursor.fetchone()
        if invalid and invalid[0]:
            run(f"DROP INDEX CONCURRENTLY {name}")
        run(f"CREATE {unique} INDEX CONCURRENTLY IF NOT EXISTS {name} ON {TABLE} ({columns})")
    # 3. The switch: one short transaction of catalog changes.
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s "
                       "AND indexname NOT IN (SELECT conname FROM pg_constraint "
                       "WHERE conrelid = %s::regclass) AND indexname NOT LIKE %s",
                       [TABLE, TABLE, f"{LEGACY}%"])
        indexes = cursor.fetchall()
        cursor.execute("SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
                       "WHERE conrelid = %s::regclass AND contype = 'f'", [TABLE])
        foreign_keys = cursor.fetchall()
    with transaction.atomic(using=schema_editor.connection.alias):
        run(f"LOCK TABLE {TABLE} IN ACCESS EXCLUSIVE MODE")
        run(f"ALTER TABLE {TABLE} RENAME TO {LEGACY}")
        for name, _ in indexes:
            run(f'ALTER INDEX "{name}" RENAME TO "{name}_legacy"')
        for name, _ in foreign_keys:
            run(f'ALTER TABLE {LEGACY} RENAME CONSTRAINT "{name}" TO "{name}_legacy"')
        run(f"CREATE TABLE {TABLE} (LIKE {LEGACY} INCLUDING DEFAULTS INCLUDING CONSTRAINTS) "
            f"PARTITION BY RANGE (created_at)")
        run(f"ALTER TABLE {TABLE} DROP CONSTRAINT {LEGACY}_range")
        # The id sequence carries on where the identity column's stopped.
        with schema_editor.connection.cursor() as cursor:
            cursor.execute("SELECT nextval(pg_get_serial_sequence(%s, 'id'))", [LEGACY])
            next_id = cursor.fetchone()[0]
        run(f"ALTER TABLE {LEGACY} ALTER COLUMN id DROP IDENTITY")
        run(f"CREATE SEQUENCE {TABLE}_id_seq START WITH {int(next_id)} OWNED BY {TABLE}.id")
        run(f"ALTER TABLE {TABLE} ALTER COLUMN id SET DEFAULT nextval('{TABLE}_id_seq')")
        run(f"ALTER TABLE {LEGACY} DROP CONSTRAINT usage_request_id_per_team")
        run(f"ALTER TABLE {LEGACY} DROP CONSTRAINT {TABLE}_pkey")
        # ATTACH adopts a partition's index for the parent's primary key only if it backs a
        # constraint of its own.
        run(f"ALTER TABLE {LEGACY} ADD CONSTRAINT {LEGACY}_pkey "
            f"PRIMARY KEY USING INDEX {LEGACY}_id_created")
        run(f"ALTER TABLE {TABLE} ADD CONSTRAINT {TABLE}_pkey PRIMARY KEY (id, created_at)")
        run(f"CREATE INDEX {REQUEST_INDEX} ON {TABLE} (request_id, team_id)")
        for _, definition in indexes:
            run(definition)  # read before the rename: it names the new partitioned table
        for name, definition in foreign_keys:
            run(f'ALTER TABLE {TABLE} ADD CONSTRAINT "{name}" {definition}')
        run(f"ALTER TABLE {TABLE} ATTACH PARTITION {LEGACY} "
            f"FOR VALUES FROM (MINVALUE) TO (%s)", [bound])
        run(f"ALTER TABLE {LEGACY} DROP CONSTRAINT {LEGACY}_range")
        run(f"CREATE TABLE {DEFAULT} PARTITION OF {TABLE} DEFAULT")
        run(f"CREATE TABLE {STRIPES} (id integer PRIMARY KEY)")
        run(f"INSERT INTO {STRIPES} SELECT generate_series(0, {STRIPE_COUNT - 1})")
        with schema_editor.connection.cursor() as cursor:
            cursor.execute(_UNIQUE_TRIGGER)  # no parameters: its '%s' are format()'s
        start = bound
        for _ in range(2):
            run(f"CREATE TABLE {month_name(start)} PARTITION OF {TABLE} "
                f"FOR VALUES FROM (%s) TO (%s)", [start, next_month(start)])
            start = next_month(start)


def droppable(before: datetime) -> list[Partition]:
    """Return the partitions holding only rows created before `before` (whole ones), oldest
    first: archiving up to `before` can drop them instead of deleting their rows."""
    return [p for p in partitions()
            if not p.is_default and p.upper is not None and p.upper <= before]


def ledger_partition_drop(partition: Partition) -> None:
    """Detach `partition` from the ledger, clear the links other tables keep to its rows (their
    keys are `SET_NULL`, without a database constraint) and drop it.

    DETACH takes an ACCESS EXCLUSIVE lock on the ledger for a catalog change (CONCURRENTLY is
    not allowed while a DEFAULT partition exists); it waits at most DETACH_LOCK_TIMEOUT for it,
    since requests queue behind a waiting lock, and tries again after a pause.
    """
    qn = connection.ops.quote_name
    for attempt in range(DETACH_ATTEMPTS):
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(f"SET LOCAL lock_timeout = '{DETACH_LOCK_TIMEOUT}'")
                cursor.execute(f"ALTER TABLE {TABLE} DETACH PARTITION {qn(partition.name)}")
            break
        except OperationalError:
            if attempt == DETACH_ATTEMPTS - 1:
                raise
            time.sleep(1)
    with transaction.atomic(), connection.cursor() as cursor:
        for relation in UsageRecord._meta.related_objects:
            field = relation.field
            if field.remote_field.on_delete is not SET_NULL:
                raise ValueError(f"{field} must be SET_NULL for a ledger month to be dropped")
            column = qn(field.column)
            cursor.execute(f"UPDATE {qn(field.model._meta.db_table)} SET {column} = NULL "
                           f"WHERE {column} IN (SELECT id FROM {qn(partition.name)})")
        # Deferred foreign-key checks of rows written earlier in an enclosing transaction must
        # run before their table goes.
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute(f"DROP TABLE {qn(partition.name)}")
