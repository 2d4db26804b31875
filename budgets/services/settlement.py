"""Settlement: the ledger record of a finished request, and charging its actual cost.

Every admitted request ends in exactly one `request_settle`, which writes its one ledger row:
it locks the counter rows admission reserved on (in the same order), moves the reservation into
`spent` at the actual cost, and writes the row in the same transaction (on PostgreSQL one
statement, budgets/pg_settlement.py).
"""

import logging
from contextlib import nullcontext
from dataclasses import dataclass, field, fields
from datetime import datetime
from decimal import Decimal
from functools import cache

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from budgets import pg_settlement, rollups, selectors
from budgets.models import BudgetCounter, BudgetReservation, UsageRecord
from budgets.money import ZERO, ledger_usd
from budgets.services.admission import Admission, duplicate_request_id
from budgets.services.alerts import alerts_create, alerts_due, alerts_send_due
from budgets.services.counters import counters_locked, counters_write
from budgets.services.sweep import ABANDONED
from llmops.principal import Principal

logger = logging.getLogger("llmops.budgets")


@dataclass
class UsageEntry:
    """Everything the ledger records about one finished request: one `UsageRecord`, before it
    is written. Each field but `principal` and `recorded_at` is the ledger column of its name."""

    request_id: str
    principal: Principal
    requested_model: str
    endpoint: str = "chat.completions"  # budgets.models.Endpoint
    served_model: str = ""
    attempted_models: list[str] = field(default_factory=list)
    routing_reason: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    estimated_prompt_tokens: int = 0
    estimated_cost: Decimal = ZERO
    cost: Decimal = ZERO
    cost_saved: Decimal = ZERO
    cache_saved: Decimal = ZERO
    reference_model: str = ""
    routing_saved: Decimal = ZERO
    shadow: bool = False
    shadow_cache_status: str = ""
    shadow_cache_entry: str = ""
    shadow_cache_similarity: float | None = None
    shadow_model: str = ""
    shadow_cache_saved: Decimal = ZERO
    shadow_routing_saved: Decimal = ZERO
    cache_status: str = "miss"
    cache_similarity: float | None = None
    stream: bool = False
    latency_ms: int | None = None
    ttft_ms: int | None = None
    upstream_latency_ms: int | None = None
    status: str = "ok"
    error_kind: str = ""
    http_status: int = 200
    # The ledger row's time when nothing was admitted (a cache hit); also tells a retried
    # settle its own earlier row from another request's under the same id.
    recorded_at: datetime = field(default_factory=timezone.now)

    def ledger_row(self, *, created_at: datetime) -> UsageRecord:
        """Return the (unsaved) ledger row of this entry, dated `created_at`, amounts at the
        ledger's precision."""
        columns = {name: getattr(self, name) for name in _COLUMNS}
        for name in _AMOUNTS:
            columns[name] = ledger_usd(columns[name])
        who = self.principal
        return UsageRecord(created_at=created_at, api_key_id=who.api_key_id,
                           user_id=who.user_id, team_id=who.team_id, **columns)


# Whose and when are the principal's ids and the admission's time; the rest maps one to one.
_COLUMNS = [f.name for f in fields(UsageEntry) if f.name not in {"principal", "recorded_at"}]
_AMOUNTS = ("estimated_cost", "cost", "cost_saved", "cache_saved", "routing_saved",
            "shadow_cache_saved", "shadow_routing_saved")


def request_settle(*, admission: Admission | None, entry: UsageEntry) -> UsageRecord:
    """Release the admission's reservations, charge the actual cost and write the ledger row.

    Idempotent per (team, request id): a retry after a settle that committed returns the first
    row and charges nothing more. `admission=None` (a cache hit, or refused before reservation)
    still writes its row, and claims its request id doing so: an id the team already used is
    refused (`duplicate_request_id`, nothing written); a cost on it is charged to the budgets
    that apply now.
    """
    now = timezone.now()
    if admission is not None and connection.vendor == "postgresql":
        record = _settle_in_one_statement(admission=admission, entry=entry, now=now)
        if record is not None:
            return record
    try:
        with transaction.atomic():
            # Whoever deletes the reservation row releases it: this settle, or the stale sweep
            # if it got there first. First, so that a concurrent duplicate settle waits here on
            # the row lock, then finds it gone and fails on the ledger insert below.
            released = admission is not None and _reservation_delete(admission)
            uncharge, abandoned = ZERO, None
            if admission is not None and not released:
                # A request the sweep presumed dead (its process looked gone) settles after
                # all: the sweep's provisional row, and the reservation it charged, give way
                # to the real row and cost. This is the only ledger row that is ever replaced,
                # and only by the request it stands for. (The sweep deletes the reservation
                # and writes that row in one transaction, so a settle that found its
                # reservation has no such row to replace.)
                abandoned = UsageRecord.objects.filter(request_id=entry.request_id,
                                                       team_id=entry.principal.team_id,
                                                       error_kind=ABANDONED).first()
                if abandoned is not None:
                    uncharge = abandoned.cost
                    abandoned.delete()
            record = entry.ledger_row(
                created_at=admission.admitted_at if admission else entry.recorded_at)
            if admission is not None:
                record.save(force_insert=True)
            elif not _ledger_claim(record):
                # The id is in flight in the team: the admitted request's row is still to come.
                raise duplicate_request_id(entry.request_id)
            _charge(admission=admission, entry=entry, released=released, now=now,
                    uncharge=uncharge)
            # After the counters are locked: one lock order (counters, then roll-ups) for all.
            if abandoned is not None:
                rollups.rollups_add(abandoned, sign=-1)
            rollups.rollups_add(record)
    except IntegrityError:
        existing = UsageRecord.objects.filter(request_id=entry.request_id,
                                              team_id=entry.principal.team_id).first()
        if existing is None:
            raise
        if admission is None and existing.created_at != entry.recorded_at:
            # A cache hit claims its id only here: a row that is not this entry's own earlier
            # write (a retry after a commit whose reply was lost) is another request of the
            # team's under the same id, and this one must not hide behind it.
            raise duplicate_request_id(entry.request_id) from None
        if admission is not None and existing.created_at != admission.admitted_at:
            logger.error("request id taken by a concurrent cache hit; this request's cost is "
                         "not in the ledger", extra={"request_id": entry.request_id,
                                                     "cost": str(entry.cost)})
        return existing
    return record


@cache
def _ledger_claim_sql(vendor: str) -> str:
    # Built once per process (per database vendor): the cache-hit path only executes it.
    qn = connection.ops.quote_name
    ledger, reservation = UsageRecord._meta, BudgetReservation._meta
    columns = ", ".join(qn(f.column) for f in _LEDGER_FIELDS)
    return (f"INSERT INTO {qn(ledger.db_table)} ({columns}) "
            f"SELECT {', '.join('%s' for _ in _LEDGER_FIELDS)} WHERE NOT EXISTS (SELECT 1 FROM "
            f"{qn(reservation.db_table)} WHERE {qn(reservation.get_field('request_id').column)} "
            f"= %s AND {qn(reservation.get_field('team').column)} = %s) "
            f"RETURNING {qn(ledger.pk.column)}")


_LEDGER_FIELDS = [f for f in UsageRecord._meta.concrete_fields if not f.primary_key]


def _ledger_claim(record: UsageRecord) -> bool:
    """Insert `record` (a cache hit's row: it claims its request id here) unless its team has
    the id in flight (reserved); return whether it was inserted. One statement; an id already
    in the team's ledger raises IntegrityError. (On SQLite the write lock makes the check and
    the insert one step; on PostgreSQL a hit racing an admission of the same id in the same
    instant can still pass, and that request's settle then finds this row.)"""
    params = [f.get_db_prep_save(getattr(record, f.attname), connection) for f in _LEDGER_FIELDS]
    with connection.cursor() as cursor:
        cursor.execute(_ledger_claim_sql(connection.vendor),
                       [*params, record.request_id, record.team_id])
        row = cursor.fetchone()
    if row is None:
        return False
    record.pk, record._state.adding = row[0], False
    return True


def _settle_in_one_statement(*, admission: Admission, entry: UsageEntry,
                             now: datetime) -> UsageRecord | None:
    """PostgreSQL, reservation still held (the common case): release, record and charge in one
    statement (budgets/pg_settlement.py). Return None when the reservation is gone, for the
    ORM path below to sort out what is there."""
    record = entry.ledger_row(created_at=admission.admitted_at)
    cost = ledger_usd(max(entry.cost, ZERO))
    try:
        # Inside a caller's transaction, a savepoint keeps a failed statement from aborting it;
        # otherwise it commits on its own (autocommit), so the counters stay locked for one
        # statement only.
        with transaction.atomic() if connection.in_atomic_block else nullcontext():
            result = pg_settlement.settle(record=record, release=admission.reserved, cost=cost,
                                          counter_ids=admission.counter_ids, now=now)
    except IntegrityError:
        return None
    if not result.released:
        return None  # the ORM path warns, if it charges above the bound
    _warn_above_bound(admission, cost)
    due = [counter.pk for counter in result.counters if counter.alert_due()]
    if due:
        alerts_send_due(counter_ids=due, now=now)
    return record


def _warn_above_bound(admission: Admission, cost: Decimal) -> None:
    if cost > admission.reserved:
        # The bound was not an upper bound (a price changed, or a provider ignored
        # max_tokens): the truth is still charged, but say so, it is how limits leak.
        logger.warning("actual cost above the reserved upper bound", extra={
            "request_id": admission.request_id, "reserved": str(admission.reserved),
            "cost": str(cost)})


def _reservation_delete(admission: Admission) -> bool:
    """Delete the admission's reservation row; return whether it was still there."""
    deleted, _ = BudgetReservation.objects.filter(
        request_id=admission.request_id, team_id=admission.principal.team_id).delete()
    return bool(deleted)


def _charge(*, admission: Admission | None, entry: UsageEntry, released: bool,
            now: datetime, uncharge: Decimal = ZERO) -> None:
    """Move the admission's reservation into spent at `entry.cost`, on the same counter rows
    (`released`: this settle deleted the reservation, so its amount leaves `reserved`; when the
    sweep got there first, it already did that and charged the reservation as the abandoned
    request's cost, which `uncharge` takes back)."""
    cost = ledger_usd(max(entry.cost, ZERO)) - uncharge
    release = ZERO
    if admission is not None:
        counter_ids = admission.counter_ids
        if released:
            release = admission.reserved
        _warn_above_bound(admission, cost)
    elif cost:
        budgets = selectors.budgets_for_principal(principal=entry.principal)
        limits = selectors.period_limits(budgets=budgets, at=now)
        counter_ids = [c.pk for c in counters_locked(limits, now=now).values()] if limits else []
    else:
        return
    if not counter_ids or (not release and not cost):
        return
    # Lock the counters only (not their budgets), in primary-key order like admission does.
    counters = list(BudgetCounter.objects.select_for_update(of=("self",))
                    .select_related("budget").filter(pk__in=counter_ids).order_by("pk"))
    alerts = []
    for counter in counters:
        counter.reserved = max(counter.reserved - release, ZERO)
        counter.spent = max(counter.spent + cost, ZERO)
        counter.updated_at = now
        alerts.extend(alerts_due(counter, now=now))
    counters_write(
        counters, ["reserved", "spent", "updated_at", "threshold_alerted_at", "limit_alerted_at"])
    alerts_create(alerts)
