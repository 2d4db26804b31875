"""Refused requests: one JSON line on logger "llmops.refusal" and llm_requests_refused_total each.

Budget refusals (402) are reported by admission (budgets.services), which also counts them on
the refusing budget counter. Rate-limit refusals (429) are reported by the per-key throttle
(llmops/api/throttling.py) and tallied per key and UTC day in `RateLimitRefusal`: in memory
first, written at most every RATE_LIMIT_REFUSALS_FLUSH_SECONDS per process, because a 429 exists
to shed load and must not turn a flood into one database write per refused request.
"""

import logging
import threading
import time
from datetime import date, datetime
from decimal import Decimal

from django.conf import settings
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.utils import timezone

from llmops import metrics

logger = logging.getLogger("llmops.refusal")

BUDGET = "budget"
RATE_LIMIT = "rate_limit"


def refusal_report(*, reason: str, scope: str, request_id: str, api_key_id: int | None,
                   key_prefix: str | None, user_id: int | None, team_id: int | None,
                   team: str | None, requested_model: str | None, period: str,
                   limit: Decimal | int, remaining: Decimal | int, requested: Decimal | int,
                   unit: str, **details) -> None:
    """Log the refusal's JSON line and count it in llm_requests_refused_total{reason,scope}.

    Names the key by its prefix only. Amounts are exact strings, as in the request log line;
    `unit` says what `limit`, `remaining` and `requested` count ("usd" or "requests").
    """
    metrics.observe_refusal(reason=reason, scope=scope)
    logger.warning("request refused", extra={
        "request_id": request_id,
        "reason": reason,
        "scope": scope,
        "key_prefix": key_prefix,
        "api_key_id": api_key_id,
        "user_id": user_id,
        "team_id": team_id,
        "team": team,
        "requested_model": requested_model or None,
        "period": period,
        "limit": str(limit),
        "remaining": str(remaining),
        "requested": str(requested),
        "unit": unit,
        **details,
    })


# --- Rate-limit refusals per key and day ---------------------------------------------------------


class _Tally:
    """Rate-limit refusals of this process not yet written, per (API key id, UTC day)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[tuple[int, date], int] = {}
        self._written_at = float("-inf")  # monotonic; the first refusal is written at once

    def add(self, api_key_id: int, day: date) -> None:
        with self._lock:
            self._counts[(api_key_id, day)] = self._counts.get((api_key_id, day), 0) + 1

    def due(self) -> bool:
        # Read without the lock: a stale answer only moves a write to the next request.
        return bool(self._counts) and (time.monotonic() - self._written_at
                                       >= settings.RATE_LIMIT_REFUSALS_FLUSH_SECONDS)

    def take(self) -> dict[tuple[int, date], int]:
        with self._lock:
            counts, self._counts = self._counts, {}
            self._written_at = time.monotonic()
        return counts

    def give_back(self, counts: dict[tuple[int, date], int]) -> None:
        with self._lock:
            for key, count in counts.items():
                self._counts[key] = self._counts.get(key, 0) + count


_tally = _Tally()


def rate_refusal_record(*, api_key_id: int, at: datetime | None = None) -> None:
    """Count one rate-limit refusal of `api_key_id`; write the tally when it is due."""
    _tally.add(api_key_id, (at or timezone.now()).date())
    rate_refusals_flush_due()


def rate_refusals_flush_due() -> None:
    """Write the tally if it holds refusals and the flush interval has passed (cheap otherwise:
    the throttle calls it on every request, so a process's counts are written by its next
    request even after its refusals stop)."""
    if _tally.due():
        rate_refusals_flush()


def rate_refusals_flush() -> int:
    """Add this process's pending rate-limit refusals to `RateLimitRefusal` in one statement;
    return how many (key, day) rows it touched. On a database error the counts are kept for the
    next flush and the error is logged, never raised: the refusal must still be answered."""
    counts = _tally.take()
    if not counts:
        return 0
    try:
        try:
            _upsert(counts)
        except IntegrityError:
            # A key deleted since its refusals were counted: its counts have nowhere to go.
            counts = _of_existing_keys(counts)
            _upsert(counts)
    except DatabaseError:
        _tally.give_back(counts)
        logger.exception("could not write rate-limit refusal counts")
        return 0
    return len(counts)


def _of_existing_keys(counts: dict[tuple[int, date], int]) -> dict[tuple[int, date], int]:
    from llmops.models import ApiKey

    existing = set(ApiKey.objects.filter(pk__in={key for key, _ in counts})
                   .values_list("pk", flat=True))
    return {(key, day): n for (key, day), n in counts.items() if key in existing}


def _upsert(counts: dict[tuple[int, date], int]) -> None:
    if not counts:
        return
    from llmops.models import RateLimitRefusal

    meta = RateLimitRefusal._meta
    qn = connection.ops.quote_name
    table = qn(meta.db_table)
    fields = [meta.get_field(name) for name in ("api_key", "day", "refused", "updated_at")]
    key, day, refused, updated = (qn(field.column) for field in fields)
    now = timezone.now()
    rows, params = [], []
    for (api_key_id, on), count in sorted(counts.items()):
        rows.append("(%s, %s, %s, %s)")
        params += [field.get_db_prep_save(value, connection)
                   for field, value in zip(fields, (api_key_id, on, count, now), strict=True)]
    # PostgreSQL and SQLite (3.24+) spell the upsert alike.
    sql = (f"INSERT INTO {table} ({key}, {day}, {refused}, {updated}) VALUES {', '.join(rows)} "
           f"ON CONFLICT ({key}, {day}) DO UPDATE SET {refused} = {table}.{refused} + "
           f"excluded.{refused}, {updated} = excluded.{updated}")
    # Atomic on its own, or as a savepoint inside a caller's transaction, so that a failed
    # insert never breaks the transaction around it.
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, params)
