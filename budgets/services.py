"""Budget admission and settlement: reserve before the call, charge the actual cost after it.

`request_admit` and `request_settle` are the two calls the gateway pipeline makes; every
admitted request ends in exactly one `request_settle`, which writes its one ledger row.

How no budget is ever overspent, on PostgreSQL and SQLite alike: admission locks the counter rows
of every (budget, period) that applies, checks `spent + reserved + amount <= limit` for each
exactly (numeric on PostgreSQL, Decimal in Python on SQLite), and adds `amount` to `reserved` on
all of them, atomically. On PostgreSQL that is one statement (budgets/pg_admission.py: `FOR
UPDATE` in primary-key order, so two admissions never deadlock, and the lock lasts only that
statement); on SQLite a transaction that takes the database write lock at `BEGIN IMMEDIATE`.
A refusal only counts itself; nothing stays reserved. Settlement locks the same rows (in the
same order), moves the reservation into `spent` at the actual cost, and writes the ledger row in
the same transaction. Counters are keyed by period start, so a new day or month needs no reset.
"""

import logging
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from functools import cache

from django.conf import settings
from django.db import IntegrityError, OperationalError, connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from budgets import pg_admission, pg_settlement, selectors
from budgets.errors import BudgetExceeded, DuplicateRequestId
from budgets.models import (
    Budget,
    BudgetAlert,
    BudgetAlertKind,
    BudgetCounter,
    BudgetPeriod,
    BudgetReservation,
    BudgetScope,
    ReservationHolder,
    UsageRecord,
    UsageStatus,
)
from budgets.money import format_usd
from budgets.periods import period_start
from budgets.selectors import PeriodLimit
from llmops.observability.refusals import BUDGET, refusal_report
from llmops.principal import Principal

logger = logging.getLogger("llmops.budgets")

ZERO = Decimal(0)
USD = Decimal("0.000000000001")  # ledger precision, as routing.pricing.USD


@dataclass
class Admission:
    """A request let through admission, with what was reserved for it and where."""

    request_id: str
    principal: Principal
    reserved: Decimal = ZERO
    counter_ids: list[int] = field(default_factory=list)
    admitted_at: datetime = field(default_factory=timezone.now)


@dataclass
class UsageEntry:
    """Everything the ledger records about one finished request."""

    request_id: str
    principal: Principal
    requested_model: str
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


def _usd(amount: Decimal) -> Decimal:
    return Decimal(amount).quantize(USD)


# --- Counters -----------------------------------------------------------------------------------


def _counters_locked(limits: list[PeriodLimit], *, now: datetime) -> dict[tuple, BudgetCounter]:
    """Return the counters for `limits`, creating missing ones, locked for this transaction."""
    return _counters_find(limits, now=now, lock=True)


def _counters_find(limits: list[PeriodLimit], *, now: datetime,
                   lock: bool = False) -> dict[tuple, BudgetCounter]:
    """Return the counters for `limits` by (budget, period, start), creating missing ones;
    with `lock`, locked in primary-key order for the current transaction."""
    keys = {p.key for p in limits}
    budget_ids = {p.budget.pk for p in limits}
    starts = {p.start for p in limits}

    def fetch() -> dict[tuple, BudgetCounter]:
        rows = (BudgetCounter.objects.filter(budget_id__in=budget_ids, period_start__in=starts)
                .order_by("pk"))
        if lock:
            rows = rows.select_for_update()
        return {(c.budget_id, c.period, c.period_start): c for c in rows
                if (c.budget_id, c.period, c.period_start) in keys}

    found = fetch()
    if len(found) < len(keys):
        # First request of a period: create its rows (ON CONFLICT DO NOTHING on both engines, so
        # concurrent first requests agree on one row), then fetch (and lock) them all in
        # primary-key order. Sorted, so two transactions inserting the same new rows wait on
        # each other in one order instead of deadlocking.
        BudgetCounter.objects.bulk_create(
            [BudgetCounter(budget_id=b, period=p, period_start=s, updated_at=now)
             for (b, p, s) in sorted(keys - found.keys())],
            ignore_conflicts=True,
        )
        found = fetch()
    return found


def _counters_write(counters: list[BudgetCounter], fields: list[str]) -> None:
    """Write `fields` of the locked `counters` back in one UPDATE … SET f = CASE pk … END.

    The new values were computed in Python with exact Decimals (on SQLite, `SET reserved =
    reserved + x` would run in floating point). This is `bulk_update` without its per-call cost:
    Django resolves one CASE expression per row and field there, which measured ~10 ms a call
    with five counters, more than the rest of admission and settlement together.
    """
    if not counters:
        return
    ops = connection.ops
    pk = ops.quote_name(BudgetCounter._meta.pk.column)
    # PostgreSQL cannot infer a type for CASE branches that are all parameters (or NULLs).
    typed = connection.vendor == "postgresql"
    assignments, params = [], []
    for name in fields:
        field = BudgetCounter._meta.get_field(name)
        value = f"CAST(%s AS {field.db_type(connection)})" if typed else "%s"
        branches = " ".join(f"WHEN %s THEN {value}" for _ in counters)
        assignments.append(f"{ops.quote_name(field.column)} = CASE {pk} {branches} END")
        for counter in counters:
            params += [counter.pk, field.get_db_prep_save(getattr(counter, name), connection)]
    params += [counter.pk for counter in counters]
    placeholders = ", ".join("%s" for _ in counters)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {ops.quote_name(BudgetCounter._meta.db_table)} "
            f"SET {', '.join(assignments)} WHERE {pk} IN ({placeholders})", params)


def budget_counters_seed(*, budget: Budget, now: datetime | None = None) -> list[BudgetCounter]:
    """Create the counters of `budget`'s current periods that are missing, with the spend the
    ledger already holds for them, so a budget created mid-month starts from the truth."""
    now = now or timezone.now()
    created = []
    for period in budget.limits():
        start = period_start(period, now)
        spent = selectors.ledger_spent(budget=budget, period=period, start=start)
        counter, was_created = BudgetCounter.objects.get_or_create(
            budget=budget, period=period, period_start=start,
            defaults={"spent": _usd(spent), "updated_at": now},
        )
        if was_created:
            created.append(counter)
    return created


def _default_budget_for_key(*, principal: Principal, now: datetime) -> Budget:
    """Return the key's defaults-driven budget, creating it (and seeding it) on first use."""
    budget, created = Budget.objects.get_or_create(
        scope=BudgetScope.KEY, api_key_id=principal.api_key_id,
        defaults={"uses_defaults": True, "created_at": now},
    )
    if created:
        budget_counters_seed(budget=budget, now=now)
    return budget


# --- Admission ----------------------------------------------------------------------------------


class _Refusal(Exception):
    """Raised inside the admission transaction to roll it back; carries what refused."""

    def __init__(self, limit: PeriodLimit, counter: BudgetCounter, remaining: Decimal):
        super().__init__()
        self.limit, self.counter, self.remaining = limit, counter, remaining


def request_admit(*, principal: Principal, request_id: str, estimated_cost: Decimal,
                  requested_model: str = "", holder: str = "",
                  now: datetime | None = None) -> Admission:
    """Admit a request whose upper-bound cost is `estimated_cost`, reserving it on every budget
    that applies; raise `budgets.errors.BudgetExceeded` when one would be overspent.

    `holder` names the gateway process that will settle it (`ReservationHolder`): the sweep
    releases the reservation soon after that process stops heartbeating.

    Statements on the common path, however many budgets exist: budgets (1), then on PostgreSQL
    counters found (1) and the admission statement (1, autocommit); on SQLite counters locked
    (1), counters updated (1), reservation inserted if the request id is unused (1).
    """
    now = now or timezone.now()
    amount = _usd(max(estimated_cost, ZERO))
    for attempt in range(_RETRIES):
        try:
            return _admit(principal=principal, request_id=request_id, amount=amount, now=now,
                          requested_model=requested_model, holder=holder)
        except OperationalError as exc:
            # PostgreSQL aborts one side of a rare lock cycle (new period rows created by two
            # requests at once); the transaction rolled back whole, so retrying is safe.
            if attempt + 1 == _RETRIES or not _is_lock_conflict(exc):
                raise
    raise AssertionError("unreachable")


_RETRIES = 3


def _is_lock_conflict(exc: OperationalError) -> bool:
    code = getattr(exc.__cause__, "sqlstate", None) or getattr(exc.__cause__, "pgcode", None)
    return code in {"40P01", "40001"}  # deadlock_detected, serialization_failure


def _limits_for(principal: Principal, *, now: datetime,
                budgets: list[Budget] | None = None) -> list[PeriodLimit]:
    if budgets is None:
        budgets = selectors.budgets_for_principal(principal=principal)
    if selectors.budget_needs_default(budgets=budgets):
        budgets.append(_default_budget_for_key(principal=principal, now=now))
    return selectors.period_limits(budgets=budgets, at=now)


def _duplicate_request_id(request_id: str) -> DuplicateRequestId:
    return DuplicateRequestId(
        f"Request id {request_id!r} was already used; send a new X-Request-ID.")


def _admit(*, principal: Principal, request_id: str, amount: Decimal, now: datetime,
           requested_model: str = "", holder: str = "") -> Admission:
    if connection.vendor == "postgresql":
        return _admit_in_one_statement(principal=principal, request_id=request_id,
                                       amount=amount, now=now, requested_model=requested_model,
                                       holder=holder)
    try:
        with transaction.atomic():
            limits = _limits_for(principal, now=now)
            counters = _counters_locked(limits, now=now) if limits else {}
            for limit in limits:
                counter = counters[limit.key]
                remaining = limit.limit - counter.spent - counter.reserved
                if limit.budget.blocks and amount > remaining:
                    raise _Refusal(limit, counter, max(remaining, ZERO))
            held = sorted(counters.values(), key=lambda c: c.pk)
            if amount and held:
                for counter in held:
                    counter.reserved += amount
                    counter.updated_at = now
                _counters_write(held, ["reserved", "updated_at"])
            # Always recorded, even with nothing held: it claims the request id (a reused one is
            # refused below, so a second request can never hide behind the first one's ledger
            # row) and lets the sweep find requests that never settled.
            _reservation_claim(
                request_id=request_id, amount=amount, counter_ids=[c.pk for c in held],
                created_at=now, api_key_id=principal.api_key_id, user_id=principal.user_id,
                team_id=principal.team_id, requested_model=requested_model[:100], holder=holder)
    except _Refusal as refusal:
        _refusal_count(refusal, amount=amount, now=now)
        _limit_alert_on_refusal(refusal, now=now)
        _refusal_report(refusal, amount=amount, principal=principal, request_id=request_id,
                        requested_model=requested_model)
        raise _budget_exceeded(refusal, amount) from None
    except IntegrityError:
        raise _duplicate_request_id(request_id) from None
    return Admission(request_id=request_id, principal=principal, reserved=amount,
                     counter_ids=[c.pk for c in held], admitted_at=now)


def _admit_in_one_statement(*, principal: Principal, request_id: str, amount: Decimal,
                            now: datetime, requested_model: str, holder: str) -> Admission:
    """PostgreSQL: find (or create) the counters without locking them, then lock, check,
    reserve and claim in one statement (budgets/pg_admission.py), so that the counters of a
    busy key stay locked for one statement instead of a whole transaction."""
    # One query finds the budgets and their current counters; only a new period's (or a new
    # default budget's) counters take the create-then-fetch path.
    budgets, counters = pg_admission.applicable(principal=principal, now=now)
    limits = _limits_for(principal, now=now, budgets=budgets)
    if any(limit.key not in counters for limit in limits):
        counters = _counters_find(limits, now=now)
    try:
        # Inside a caller's transaction, a savepoint keeps a refused claim from aborting it;
        # otherwise the statement commits on its own (autocommit), which is the point.
        with transaction.atomic() if connection.in_atomic_block else nullcontext():
            result = pg_admission.reserve(
                request_id=request_id, amount=amount,
                limits=[(counters[limit.key].pk, limit.limit, limit.budget.blocks)
                        for limit in limits],
                now=now, api_key_id=principal.api_key_id, user_id=principal.user_id,
                team_id=principal.team_id, requested_model=requested_model[:100], holder=holder)
    except IntegrityError:
        raise _duplicate_request_id(request_id) from None
    if not result.fresh:
        raise _duplicate_request_id(request_id)
    if not result.fits:
        for limit in limits:  # narrowest first: the refusal names the most specific budget
            counter = counters[limit.key]
            locked = result.counters[counter.pk]
            counter.spent, counter.reserved = locked.spent, locked.reserved
            counter.limit_alerted_at = locked.limit_alerted_at
            remaining = limit.limit - locked.spent - locked.reserved
            if limit.budget.blocks and amount > remaining:
                # The statement already counted the refusal on this counter.
                refusal = _Refusal(limit, counter, max(remaining, ZERO))
                _limit_alert_on_refusal(refusal, now=now)
                _refusal_report(refusal, amount=amount, principal=principal,
                                request_id=request_id, requested_model=requested_model)
                raise _budget_exceeded(refusal, amount)
        raise AssertionError("the statement refused, but no limit is exceeded")
    return Admission(request_id=request_id, principal=principal, reserved=amount,
                     counter_ids=sorted(c.pk for c in counters.values()), admitted_at=now)


def _reservation_claim(**values) -> None:
    """Insert the reservation row `values` unless the team's ledger already holds its request id.

    One statement (`INSERT … SELECT … WHERE NOT EXISTS`) instead of an insert and a lookup. An id
    that is taken raises IntegrityError: in flight (the reservation's unique (team, request id))
    or finished (no row inserted because the ledger has it). Ids are the client's, so another
    team's use of the same id is no conflict.
    """
    reservation, ledger = BudgetReservation._meta, UsageRecord._meta
    qn = connection.ops.quote_name
    columns, params = [], []
    for name, value in values.items():
        field = reservation.get_field(name)
        columns.append(qn(field.column))
        params.append(field.get_db_prep_save(value, connection))
    sql = (f"INSERT INTO {qn(reservation.db_table)} ({', '.join(columns)}) "
           f"SELECT {', '.join('%s' for _ in columns)} WHERE NOT EXISTS (SELECT 1 FROM "
           f"{qn(ledger.db_table)} WHERE {qn(ledger.get_field('request_id').column)} = %s "
           f"AND {qn(ledger.get_field('team').column)} = %s)")
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, values["request_id"], values["team_id"]])
        if cursor.rowcount == 0:
            raise IntegrityError("request id already in the ledger")


def _refusal_count(refusal: _Refusal, *, amount: Decimal, now: datetime) -> None:
    """SQLite: count the refusal on the counter that refused, in one statement of its own (the
    admission transaction rolled back). PostgreSQL counts it inside the admission statement."""
    counter = refusal.counter
    rows = BudgetCounter.objects.filter(budget_id=counter.budget_id, period=counter.period,
                                        period_start=counter.period_start)
    change = {"refused": F("refused") + 1, "refused_amount": F("refused_amount") + amount,
              "last_refused_at": now}
    if not rows.update(**change):
        # The request was its period's first, and the rollback undid the counter it created:
        # create it again (the limit alert is claimed on it next).
        refusal.counter = _counters_find([refusal.limit], now=now)[refusal.limit.key]
        rows.update(**change)


def _refusal_report(refusal: _Refusal, *, amount: Decimal, principal: Principal,
                    request_id: str, requested_model: str) -> None:
    """Write the refusal's JSON line and count it in llm_requests_refused_total."""
    limit = refusal.limit
    refusal_report(
        reason=BUDGET, scope=limit.budget.scope, request_id=request_id,
        api_key_id=principal.api_key_id, key_prefix=principal.key_prefix,
        user_id=principal.user_id, team_id=principal.team_id, team=principal.team_name,
        requested_model=requested_model, period=limit.period, limit=limit.limit,
        remaining=_usd(refusal.remaining), requested=amount, unit="usd",
        budget_id=limit.budget.pk, period_start=limit.start.isoformat())


def _budget_exceeded(refusal: _Refusal, amount: Decimal) -> BudgetExceeded:
    limit = refusal.limit
    name = str(limit.budget)
    period = BudgetPeriod(limit.period).label.lower()
    message = (
        f"{name}: the {period} limit of {format_usd(limit.limit, decimals=6)} has "
        f"{format_usd(refusal.remaining, decimals=6)} remaining, less than this request's "
        f"maximum cost of {format_usd(amount, decimals=6)}. Lower max_tokens (or set a "
        f"default_max_tokens for the team), choose a cheaper model, or raise the budget."
    )
    return BudgetExceeded(message, extra={
        "budget": {"id": limit.budget.pk, "scope": limit.budget.scope,
                   "name": limit.budget.target_label},
        "period": limit.period,
        "period_start": limit.start.isoformat(),
        "limit": str(limit.limit),
        "remaining": str(_usd(refusal.remaining)),
        "requested": str(amount),
    })


# --- Settlement ---------------------------------------------------------------------------------


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
            uncharge = ZERO
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
            record = _ledger_row(
                entry, created_at=admission.admitted_at if admission else entry.recorded_at)
            if admission is not None:
                record.save(force_insert=True)
            elif not _ledger_claim(record):
                # The id is in flight in the team: the admitted request's row is still to come.
                raise _duplicate_request_id(entry.request_id)
            _charge(admission=admission, entry=entry, released=released, now=now,
                    uncharge=uncharge)
    except IntegrityError:
        existing = UsageRecord.objects.filter(request_id=entry.request_id,
                                              team_id=entry.principal.team_id).first()
        if existing is None:
            raise
        if admission is None and existing.created_at != entry.recorded_at:
            # A cache hit claims its id only here: a row that is not this entry's own earlier
            # write (a retry after a commit whose reply was lost) is another request of the
            # team's under the same id, and this one must not hide behind it.
            raise _duplicate_request_id(entry.request_id) from None
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
    record = _ledger_row(entry, created_at=admission.admitted_at)
    cost = _usd(max(entry.cost, ZERO))
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
        _alerts_send_due(counter_ids=due, now=now)
    return record


def _alerts_send_due(*, counter_ids: list[int], now: datetime) -> None:
    """Create the alerts the counters' spend now triggers; the check and the mark happen under
    the row locks (`_alerts_due`), so concurrent settlements send each alert once."""
    with transaction.atomic():
        counters = list(BudgetCounter.objects.select_for_update(of=("self",))
                        .select_related("budget").filter(pk__in=counter_ids).order_by("pk"))
        alerts = [alert for counter in counters for alert in _alerts_due(counter, now=now)]
        if alerts:
            _counters_write(counters, ["threshold_alerted_at", "limit_alerted_at"])
            _alerts_create(alerts)


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


def _ledger_row(entry: UsageEntry, *, created_at: datetime) -> UsageRecord:
    p = entry.principal
    return UsageRecord(
        request_id=entry.request_id,
        created_at=created_at,
        api_key_id=p.api_key_id,
        user_id=p.user_id,
        team_id=p.team_id,
        requested_model=entry.requested_model,
        served_model=entry.served_model,
        attempted_models=entry.attempted_models,
        routing_reason=entry.routing_reason,
        prompt_tokens=entry.prompt_tokens,
        completion_tokens=entry.completion_tokens,
        cached_tokens=entry.cached_tokens,
        reasoning_tokens=entry.reasoning_tokens,
        estimated_prompt_tokens=entry.estimated_prompt_tokens,
        estimated_cost=_usd(entry.estimated_cost),
        cost=_usd(entry.cost),
        cost_saved=_usd(entry.cost_saved),
        cache_status=entry.cache_status,
        cache_similarity=entry.cache_similarity,
        stream=entry.stream,
        latency_ms=entry.latency_ms,
        ttft_ms=entry.ttft_ms,
        upstream_latency_ms=entry.upstream_latency_ms,
        status=entry.status,
        error_kind=entry.error_kind,
        http_status=entry.http_status,
    )


def _charge(*, admission: Admission | None, entry: UsageEntry, released: bool,
            now: datetime, uncharge: Decimal = ZERO) -> None:
    """Move the admission's reservation into spent at `entry.cost`, on the same counter rows
    (`released`: this settle deleted the reservation, so its amount leaves `reserved`; when the
    sweep got there first, it already did that and charged the reservation as the abandoned
    request's cost, which `uncharge` takes back)."""
    cost = _usd(max(entry.cost, ZERO)) - uncharge
    release = ZERO
    if admission is not None:
        counter_ids = admission.counter_ids
        if released:
            release = admission.reserved
        _warn_above_bound(admission, cost)
    elif cost:
        budgets = selectors.budgets_for_principal(principal=entry.principal)
        limits = selectors.period_limits(budgets=budgets, at=now)
        counter_ids = [c.pk for c in _counters_locked(limits, now=now).values()] if limits else []
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
        alerts.extend(_alerts_due(counter, now=now))
    _counters_write(
        counters, ["reserved", "spent", "updated_at", "threshold_alerted_at", "limit_alerted_at"])
    _alerts_create(alerts)


# --- Alerts -------------------------------------------------------------------------------------


def _alerts_due(counter: BudgetCounter, *, now: datetime) -> list[BudgetAlert]:
    """Return the alerts `counter`'s new spend triggers, marking them sent on the (locked) row.

    The row lock held by the caller makes the check-and-mark atomic: exactly one settlement per
    period sends each alert, however many run concurrently.
    """
    budget = counter.budget
    limit = budget.limit_for(counter.period)
    if not limit:
        return []
    due = []
    if counter.threshold_alerted_at is None and counter.spent >= limit * budget.alert_threshold:
        counter.threshold_alerted_at = now
        due.append(BudgetAlertKind.THRESHOLD)
    if counter.limit_alerted_at is None and counter.spent >= limit:
        counter.limit_alerted_at = now
        due.append(BudgetAlertKind.LIMIT)
    return [BudgetAlert(budget=budget, counter=counter, kind=kind, period=counter.period,
                        period_start=counter.period_start, spent=counter.spent, limit=limit,
                        created_at=now) for kind in due]


def _alerts_create(alerts: list[BudgetAlert]) -> None:
    for alert in alerts:
        alert.save(force_insert=True)
        transaction.on_commit(lambda pk=alert.pk: _alert_enqueue(alert_id=pk))


def _limit_alert_on_refusal(refusal: _Refusal, *, now: datetime) -> None:
    """Claim and send the "limit reached" alert of the budget period that refused a request."""
    counter = refusal.counter
    if counter.limit_alerted_at is not None:
        return  # already sent this period: refusals under load cost no extra write
    with transaction.atomic():
        claimed = BudgetCounter.objects.filter(pk=counter.pk, limit_alerted_at__isnull=True).update(
            limit_alerted_at=now)
        if claimed:
            _alerts_create([BudgetAlert(
                budget=refusal.limit.budget, counter=counter, kind=BudgetAlertKind.LIMIT,
                period=counter.period, period_start=counter.period_start,
                spent=counter.spent, limit=refusal.limit.limit, created_at=now)])


def _alert_enqueue(*, alert_id: int) -> None:
    from budgets.tasks import budget_alert_send

    try:
        budget_alert_send.delay(alert_id)
    except Exception:  # a broker that is down must not fail a request; the alert row remains
        logger.exception("could not enqueue budget alert", extra={"alert_id": alert_id})


def alerts_redeliver(*, older_than_seconds: int = 60, now: datetime | None = None,
                     limit: int = 200) -> int:
    """Queue again the alerts that were never delivered (broker down, webhook failing), within
    the retry allowance; return how many were queued. Run by Celery beat."""
    now = now or timezone.now()
    due = (BudgetAlert.objects
           .filter(delivered_at__isnull=True, attempts__lt=settings.BUDGET_ALERT_MAX_RETRIES + 1,
                   created_at__lt=now - timedelta(seconds=older_than_seconds))
           .order_by("created_at").values_list("pk", flat=True)[:limit])
    queued = 0
    for alert_id in due:
        _alert_enqueue(alert_id=alert_id)
        queued += 1
    return queued


def budget_alert_deliver(*, alert_id: int) -> BudgetAlert:
    """Send one alert to its budget's webhook (JSON POST) and email; raise when either fails."""
    import httpx
    from django.core.mail import send_mail

    alert = BudgetAlert.objects.select_related("budget").get(pk=alert_id)
    if alert.delivered_at is not None:
        return alert
    budget = alert.budget
    payload = alert_payload(alert=alert)
    BudgetAlert.objects.filter(pk=alert.pk).update(attempts=alert.attempts + 1)
    try:
        if budget.notify_webhook_url:
            response = httpx.post(budget.notify_webhook_url, json=payload,
                                  timeout=settings.BUDGET_ALERT_WEBHOOK_TIMEOUT_SECONDS)
            response.raise_for_status()
        if budget.notify_email:
            send_mail(subject=f"[llmops] {payload['message']}", message=payload["message"],
                      from_email=settings.BUDGET_ALERT_FROM_EMAIL,
                      recipient_list=[budget.notify_email])
    except Exception as exc:
        BudgetAlert.objects.filter(pk=alert.pk).update(last_error=str(exc)[:1000])
        raise
    alert.delivered_at = timezone.now()
    BudgetAlert.objects.filter(pk=alert.pk).update(delivered_at=alert.delivered_at, last_error="")
    return alert


def alert_payload(*, alert: BudgetAlert) -> dict:
    """Return the JSON body an alert webhook receives."""
    budget = alert.budget
    what = ("reached its limit" if alert.kind == BudgetAlertKind.LIMIT
            else f"crossed {budget.alert_threshold:.0%} of its limit")
    return {
        "event": f"budget.{alert.kind}",
        "message": f"{budget} {what} for the {alert.period} starting "
                   f"{alert.period_start:%Y-%m-%d}: {format_usd(alert.spent, decimals=6)} of "
                   f"{format_usd(alert.limit, decimals=6)}.",
        "budget": {"id": budget.pk, "scope": budget.scope, "name": budget.target_label,
                   "action": budget.action},
        "period": alert.period,
        "period_start": alert.period_start.isoformat(),
        "spent": str(alert.spent),
        "limit": str(alert.limit),
        "threshold": str(budget.alert_threshold),
        "created_at": alert.created_at.isoformat(),
    }


# --- Sweep ---------------------------------------------------------------------------------------


def reservation_holder_heartbeat(*, holder_id: str, hostname: str = "", pid: int = 0,
                                 now: datetime | None = None) -> None:
    """Say that gateway process `holder_id` is alive (one upsert): while it keeps saying so,
    the sweep leaves its reservations alone, however long its requests run."""
    now = now or timezone.now()
    ReservationHolder.objects.bulk_create(
        [ReservationHolder(id=holder_id, hostname=hostname[:255], pid=pid, started_at=now,
                           seen_at=now)],
        update_conflicts=True, unique_fields=["id"], update_fields=["seen_at"],
    )


def reservations_stale(*, older_than_seconds: int | None = None,
                       holder_timeout_seconds: float | None = None,
                       now: datetime | None = None):
    """Return the reservations whose request can no longer settle them: those whose holder
    process stopped heartbeating `holder_timeout_seconds` ago, and those made outside a gateway
    process (no holder) older than `older_than_seconds`."""
    now = now or timezone.now()
    if older_than_seconds is None:
        older_than_seconds = settings.BUDGET_RESERVATION_TIMEOUT_SECONDS
    if holder_timeout_seconds is None:
        holder_timeout_seconds = settings.BUDGET_HOLDER_TIMEOUT_SECONDS
    holder_cutoff = now - timedelta(seconds=holder_timeout_seconds)
    alive = ReservationHolder.objects.filter(seen_at__gte=holder_cutoff).values("pk")
    return BudgetReservation.objects.filter(
        Q(holder="", created_at__lt=now - timedelta(seconds=older_than_seconds))
        | (~Q(holder="") & Q(created_at__lt=holder_cutoff) & ~Q(holder__in=alive)))


def reservations_release_stale(*, older_than_seconds: int | None = None,
                               holder_timeout_seconds: float | None = None,
                               now: datetime | None = None, batch_size: int = 500) -> int:
    """Release the reservations whose request died without settling (`reservations_stale`);
    return how many. Run by every gateway process (llmops.gateway.holder) and by Celery beat.

    Each dead request is charged its reservation, the most it could have cost: whether its
    call reached the provider, and what the provider billed, died with the process, and the
    ledger must never under-state a bill. If the request settles after all, the real cost
    replaces that charge. Each is released in its own short transaction, so the sweep never
    holds counters long.
    """
    now = now or timezone.now()
    stale = reservations_stale(older_than_seconds=older_than_seconds,
                               holder_timeout_seconds=holder_timeout_seconds, now=now)
    released = 0
    while True:
        ids = list(stale.order_by("created_at").values_list("pk", flat=True)[:batch_size])
        for pk in ids:
            with transaction.atomic():
                reservation = BudgetReservation.objects.select_for_update().filter(pk=pk).first()
                if reservation is None:
                    continue  # settled meanwhile
                reservation.delete()
                _record_abandoned(reservation)
                counters = list(BudgetCounter.objects.select_for_update(of=("self",))
                                .select_related("budget")
                                .filter(pk__in=reservation.counter_ids).order_by("pk"))
                alerts = []
                for counter in counters:
                    counter.reserved = max(counter.reserved - reservation.amount, ZERO)
                    counter.spent += reservation.amount
                    counter.updated_at = now
                    alerts.extend(_alerts_due(counter, now=now))
                _counters_write(counters, ["reserved", "spent", "updated_at",
                                           "threshold_alerted_at", "limit_alerted_at"])
                _alerts_create(alerts)
                released += 1
                logger.warning("released stale reservation", extra={
                    "request_id": reservation.request_id, "amount": str(reservation.amount),
                    "holder": reservation.holder})
        if len(ids) < batch_size:
            break
    # Holders gone for a day have no reservations left to vouch for.
    ReservationHolder.objects.filter(seen_at__lt=now - timedelta(days=1)).delete()
    return released


ABANDONED = "abandoned"  # error_kind of the sweep's provisional row for a request that died


def _record_abandoned(reservation: BudgetReservation) -> None:
    """Write the ledger row of a request that was admitted but never settled (its process died):
    every admitted request has exactly one row, charged the reservation (see
    `reservations_release_stale`)."""
    UsageRecord.objects.get_or_create(
        request_id=reservation.request_id, team_id=reservation.team_id,
        defaults=dict(
            created_at=reservation.created_at, api_key_id=reservation.api_key_id,
            user_id=reservation.user_id,
            requested_model=reservation.requested_model, estimated_cost=reservation.amount,
            cost=reservation.amount, status=UsageStatus.GATEWAY_ERROR, error_kind=ABANDONED,
            http_status=500,
        ),
    )


# --- Budgets and reconciliation -----------------------------------------------------------------


class _Keep:
    def __repr__(self) -> str:
        return "KEEP"


KEEP = _Keep()  # "leave this field as it is" for budget_set's optional arguments


@transaction.atomic
def budget_set(
    *,
    scope: str,
    api_key=None,
    user=None,
    team=None,
    daily_limit: Decimal | None | _Keep = KEEP,
    monthly_limit: Decimal | None | _Keep = KEEP,
    total_limit: Decimal | None | _Keep = KEEP,
    alert_threshold: Decimal | _Keep = KEEP,
    action: str | _Keep = KEEP,
    notify_webhook_url: str | _Keep = KEEP,
    notify_email: str | _Keep = KEEP,
    is_active: bool | _Keep = KEEP,
) -> Budget:
    """Create or update the budget of one scope; arguments left as KEEP keep their value.

    A key's defaults-driven budget becomes an explicit one. Counters of newly limited periods
    start from what the ledger already holds.
    """
    target = {"api_key": api_key, "user": user, "team": team}
    lookup = {"scope": scope}
    for name, value in target.items():
        lookup[name] = value
    budget = Budget.objects.select_for_update().filter(**lookup).first()
    if budget is None:
        budget = Budget(**lookup)
    changes = {
        "daily_limit": daily_limit, "monthly_limit": monthly_limit, "total_limit": total_limit,
        "alert_threshold": alert_threshold, "action": action,
        "notify_webhook_url": notify_webhook_url, "notify_email": notify_email,
        "is_active": is_active,
    }
    for name, value in changes.items():
        if value is not KEEP:
            setattr(budget, name, value)
    if budget.uses_defaults:
        for name, setting in (("daily_limit", "DEFAULT_DAILY_BUDGET"),
                              ("monthly_limit", "DEFAULT_MONTHLY_BUDGET")):
            if changes[name] is KEEP:
                setattr(budget, name, getattr(settings, setting, None))
        budget.uses_defaults = False
    budget.full_clean()
    budget.save()
    budget_counters_seed(budget=budget)
    return budget


@dataclass
class Drift:
    """A counter whose stored amounts differ from what the ledger and reservations say."""

    counter_id: int
    budget: str
    period: str
    period_start: datetime
    stored_spent: Decimal
    ledger_spent: Decimal
    stored_reserved: Decimal
    held_reserved: Decimal

    def as_dict(self) -> dict:
        return {
            "counter_id": self.counter_id, "budget": self.budget, "period": self.period,
            "period_start": self.period_start.isoformat(),
            "stored_spent": str(self.stored_spent), "ledger_spent": str(self.ledger_spent),
            "stored_reserved": str(self.stored_reserved),
            "held_reserved": str(self.held_reserved),
        }


def budget_counters_reconcile(*, fix: bool = True, tolerance: Decimal = Decimal("0.000001"),
                              budget_ids: list[int] | None = None) -> list[Drift]:
    """Rebuild every counter from the ledger (spent) and open reservations (reserved); return the
    drifts found. Each counter is rebuilt under its row lock, so concurrent settlements, which
    add to the locked value, stay correct."""
    drifts = []
    counters = BudgetCounter.objects.select_related("budget__api_key", "budget__user",
                                                    "budget__team").order_by("pk")
    if budget_ids is not None:
        counters = counters.filter(budget_id__in=budget_ids)
    for pk in counters.values_list("pk", flat=True):
        with transaction.atomic():
            counter = counters.select_for_update(of=("self",)).get(pk=pk)
            spent = _usd(selectors.ledger_spent(budget=counter.budget, period=counter.period,
                                                start=counter.period_start))
            held = selectors.reservations_by_counter().get(counter.pk, ZERO)
            if (abs(spent - counter.spent) > tolerance
                    or abs(held - counter.reserved) > tolerance):
                drifts.append(Drift(
                    counter_id=counter.pk, budget=str(counter.budget), period=counter.period,
                    period_start=counter.period_start, stored_spent=counter.spent,
                    ledger_spent=spent, stored_reserved=counter.reserved, held_reserved=held))
                if fix:
                    BudgetCounter.objects.filter(pk=pk).update(spent=spent, reserved=held,
                                                               updated_at=timezone.now())
    return drifts

