"""Archiving: export raw ledger rows older than a date to a file, then drop their months
(PostgreSQL's monthly partitions) or delete them in batches.

Roll-ups, budget counters and quality verdicts (`ResponseFeedback`, unlinked from the rows) are
left as they are, so reports, limits and quality keep their history; a
`LedgerArchive` row remembers the cut, so reconciliation can say which periods it can no longer
check from raw rows.
"""

import csv
import gzip
import os
from collections.abc import Callable
from datetime import datetime, timedelta
from itertools import islice
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.db.models import Max, Q, QuerySet
from django.utils import timezone

from budgets import partitions
from budgets.models import LedgerArchive, UsageRecord
from budgets.rollups import day_start

# Every column, the primary key first: an archive row is the ledger row.
ARCHIVE_COLUMNS = [f.attname for f in UsageRecord._meta.concrete_fields]
_CREATED_AT = ARCHIVE_COLUMNS.index("created_at")


def _open(path: Path):
    if path.suffix == ".gz":
        return gzip.open(path, "wt", newline="", encoding="utf-8")
    return path.open("w", newline="", encoding="utf-8")


def ledger_archive(*, before: datetime, to: str | Path, batch_size: int = 5000,
                   progress: Callable[[int], None] | None = None) -> int:
    """Write the ledger rows created before `before` to the CSV file `to` (gzipped when it ends
    in .gz) and remove them from the ledger; return how many.

    On PostgreSQL, each monthly partition wholly before `before` is written out and then
    dropped (`budgets.partitions.ledger_partition_drop`): the cost of removing a month does not
    grow with its rows. The rows left (all of them on SQLite, or a cut inside a month) are
    deleted a batch of `batch_size` at a time once the batch is on disk.

    Rows are read in (created_at, id) order through the created_at index, a batch at a time,
    and each batch is deleted in its own short transaction (its rows' quality verdicts stay,
    unlinked: `ResponseFeedback`), so no lock is held for longer than one batch and settlement goes
    on meanwhile. A crash between a batch's write and its delete leaves that batch in the file
    and in the ledger: archiving again writes it again, to the new file.
    """
    path = Path(to)
    path.parent.mkdir(parents=True, exist_ok=True)
    archived = 0
    with _open(path) as out:
        writer = csv.writer(out)
        writer.writerow(ARCHIVE_COLUMNS)
        # PostgreSQL: whole months before the cut are written out, then their partition is
        # dropped (seconds, whatever their size); only the rest is deleted batch by batch.
        for partition in partitions.droppable(before):
            rows = UsageRecord.objects.filter(created_at__lt=partition.upper)
            if partition.lower is not None:
                rows = rows.filter(created_at__gte=partition.lower)
            archived += _export_whole(rows, out, writer, batch_size=batch_size,
                                      progress=progress)
            partitions.ledger_partition_drop(partition)
        archived += _export(UsageRecord.objects.filter(created_at__lt=before), out, writer,
                            batch_size=batch_size, progress=progress)
    LedgerArchive.objects.create(before=before, destination=str(path), rows=archived)
    return archived


def _export_whole(rows: QuerySet, out, writer, *, batch_size: int,
                  progress: Callable[[int], None] | None) -> int:
    """Write `rows` (a partition about to be dropped) in (created_at, id) order, streamed
    through one server-side cursor, and fsync the file; return how many."""
    stream = rows.order_by("created_at", "id").values_list(*ARCHIVE_COLUMNS).iterator(
        chunk_size=batch_size)
    written = 0
    while chunk := list(islice(stream, batch_size)):
        writer.writerows(chunk)
        written += len(chunk)
        if progress is not None:
            progress(len(chunk))
    out.flush()
    os.fsync(out.fileno())  # on disk before the partition is dropped
    return written


def _export(rows: QuerySet, out, writer, *, batch_size: int,
            progress: Callable[[int], None] | None) -> int:
    """Write `rows` in (created_at, id) order, a batch at a time, each on disk (fsync) before
    it is deleted in its own short transaction; return how many."""
    rows = rows.order_by("created_at", "id")
    written = 0
    after: tuple[datetime, int] | None = None
    while True:
        page = rows if after is None else rows.filter(
            Q(created_at__gt=after[0]) | Q(created_at=after[0], id__gt=after[1]))
        batch = list(page.values_list(*ARCHIVE_COLUMNS)[:batch_size])
        if not batch:
            return written
        writer.writerows(batch)
        out.flush()
        os.fsync(out.fileno())  # on disk before the rows leave the database
        with transaction.atomic():
            UsageRecord.objects.filter(pk__in=[row[0] for row in batch]).delete()
        written += len(batch)
        after = (batch[-1][_CREATED_AT], batch[-1][0])
        if progress is not None:
            progress(len(batch))


def ledger_archived_before() -> datetime | None:
    """Return the latest cut archiving made: raw rows before it may be gone (None: never)."""
    return LedgerArchive.objects.aggregate(before=Max("before"))["before"]


def ledger_retention_apply(*, now: datetime | None = None) -> int:
    """Archive and delete the rows older than LEDGER_RETENTION_DAYS (whole UTC days) to a file
    in LEDGER_ARCHIVE_DIR; return how many. Does nothing when the setting is unset."""
    days = settings.LEDGER_RETENTION_DAYS
    if days is None:
        return 0
    before = day_start(now or timezone.now()) - timedelta(days=days)
    if not UsageRecord.objects.filter(created_at__lt=before).exists():
        return 0
    stamp = timezone.now().strftime("%Y%m%dT%H%M%S")
    to = Path(settings.LEDGER_ARCHIVE_DIR) / f"ledger-before-{before:%Y-%m-%d}-{stamp}.csv.gz"
    return ledger_archive(before=before, to=to)
