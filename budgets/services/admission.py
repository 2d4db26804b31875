"""Admission: reserve a request's upper-bound cost on every budget that applies, or refuse it.

Admission locks the counter rows of every (budget, period) that applies, checks `spent +
reserved + amount <= limit` for each exactly (numeric on PostgreSQL, Decimal in Python on
SQLite), and adds `amount` to `reserved` on all of them, atomically. On PostgreSQL that is one
statement (budgets/pg_admission.py: `FOR UPDATE` in primary-key order, so two admissions never
deadlock, and the lock lasts only that statement); on SQLite a transaction that takes the
database write lock at `BEGIN IMMEDIATE`. A refusal only counts itself; nothing stays reserved.
"""

from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from django.db import IntegrityError, OperationalError, connection, transaction
from django.db.models import F
from django.utils import timezone

from budgets import pg_admission, selectors
from budgets.errors import BudgetExceeded, DuplicateRequestId
from budgets.models import Budget, BudgetCounter, BudgetPeriod, BudgetReservation, UsageRecord
from budgets.money import ZERO, format_usd, ledger_usd
from budgets.selectors import PeriodLimit
from budgets.services.alerts import limit_alert_on_refusal
from budgets.services.budgets import default_budget_for_key
from budgets.services.counters import counters_find, counters_locked, counters_write
from llmops.observability.refusals import BUDGET, refusal_report
from llmops.principal import Principal


@dataclass
class Admission:
    """A request let through admission, with what was reserved for it and where."""

    request_id: str
    principal: Principal
    reserved: Decimal = ZERO
    counter_ids: list[int] = field(default_factory=list)
    admitted_at: datetime = field(default_factory=timezone.now)


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
    amount = ledger_usd(max(estimated_cost, ZERO))
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
        budgets.append(default_budget_for_key(principal=principal, now=now))
    return selectors.period_limits(budgets=budgets, at=now)


def duplicate_request_id(request_id: str) -> DuplicateRequestId:
    """Return the refusal of a request id its team already used."""
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
            counters = counters_locked(limits, now=now) if limits else {}
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
                counters_write(held, ["reserved", "updated_at"])
            # Always recorded, even with nothing held: it claims the request id (a reused one is
            # refused below, so a second request can never hide behind the first one's ledger
            # row) and lets the sweep find requests that never settled.
            _reservation_claim(
                request_id=request_id, amount=amount, counter_ids=[c.pk for c in held],
                created_at=now, api_key_id=principal.api_key_id, user_id=principal.user_id,
                team_id=principal.team_id, requested_model=requested_model[:100], holder=holder)
    except _Refusal as refusal:
        _refusal_count(refusal, amount=amount, now=now)
        limit_alert_on_refusal(limit=refusal.limit, counter=refusal.counter, now=now)
        _refusal_report(refusal, amount=amount, principal=principal, request_id=request_id,
                        requested_model=requested_model)
        raise _budget_exceeded(refusal, amount) from None
    except IntegrityError:
        raise duplicate_request_id(request_id) from None
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
        counters = counters_find(limits, now=now)
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
        raise duplicate_request_id(request_id) from None
    if not result.fresh:
        raise duplicate_request_id(request_id)
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
                limit_alert_on_refusal(limit=limit, counter=counter, now=now)
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
        refusal.counter = counters_find([refusal.limit], now=now)[refusal.limit.key]
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
        remaining=ledger_usd(refusal.remaining), requested=amount, unit="usd",
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
        "remaining": str(ledger_usd(refusal.remaining)),
        "requested": str(amount),
    })
