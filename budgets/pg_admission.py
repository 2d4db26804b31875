"""Budget admission on PostgreSQL in one statement: lock, check, reserve and claim the request id.

Every request of an API key locks the same counter rows (its day and month, its team's, the
global ones), so the time those locks are held bounds the key's throughput. Done as separate
statements in a transaction, that window holds several round trips, the Python in between (which
must win the GIL back after each reply) and the commit. Here it is one statement: the counters
are locked in primary-key order (as settlement locks them, so the two never deadlock), every
blocking limit is checked against the locked values, and only when all fit and the request id is
new are the counters increased and the reservation row inserted. In autocommit the lock lasts
just this statement and its commit.

The counters must exist (the caller creates a new period's rows first, see
`budgets.services.counters.counters_find`). `applicable` finds the budgets and their current
counters in one query, for the common case where nothing needs creating.
"""

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import cache

from django.db import connection

from budgets.models import (
    Budget,
    BudgetCounter,
    BudgetPeriod,
    BudgetReservation,
    BudgetScope,
    UsageRecord,
)
from budgets.periods import period_start
from llmops import raw_rows
from llmops.principal import Principal


@dataclass(frozen=True)
class LockedCounter:
    """A counter's values as the admission statement found them, under its lock."""

    pk: int
    spent: Decimal
    reserved: Decimal
    limit_alerted_at: datetime | None


@dataclass(frozen=True)
class Reservation:
    """What the statement did: `fits` (every blocking limit has room), `fresh` (the request id is
    not in the team's ledger), and the counters' values before any change. Reserved iff both."""

    fits: bool
    fresh: bool
    counters: dict[int, LockedCounter]

    @property
    def reserved(self) -> bool:
        return self.fits and self.fresh


@cache
def _sql() -> str:
    # Built once per process: the hot path only executes it.
    qn = connection.ops.quote_name
    counter, reservation, ledger = map(raw_rows.table,
                                       (BudgetCounter, BudgetReservation, UsageRecord))
    res = BudgetReservation._meta
    columns = ", ".join(qn(res.get_field(name).column) for name in (
        "request_id", "amount", "counter_ids", "created_at", "api_key", "user", "team",
        "requested_model", "holder"))
    return f"""
WITH applicable (id, lim, blocks) AS (
    SELECT * FROM unnest(%(ids)s::bigint[], %(limits)s::numeric[], %(blocks)s::boolean[])
), locked AS (
    SELECT c.id, c.spent, c.reserved, c.limit_alerted_at, a.lim, a.blocks
    FROM {counter} c JOIN applicable a ON a.id = c.id
    ORDER BY c.id
    FOR UPDATE OF c
), verdict AS (
    SELECT COALESCE(bool_and(NOT blocks OR spent + reserved + %(amount)s <= lim), TRUE) AS fits,
           NOT EXISTS (SELECT 1 FROM {ledger}
                       WHERE request_id = %(request_id)s AND team_id = %(team_id)s) AS fresh
    FROM locked
), reserve AS (
    UPDATE {counter} c SET reserved = c.reserved + %(amount)s, updated_at = %(now)s
    FROM locked, verdict
    WHERE c.id = locked.id AND verdict.fits AND verdict.fresh AND %(amount)s > 0
    RETURNING c.id
), refuse AS (
    -- Refused (a fresh id that does not fit): count it on the narrowest limit that refused
    -- (limits come narrowest first), under the lock already held, so a refusal costs no extra
    -- statement. Never the row `reserve` updates: that one runs only when everything fits.
    UPDATE {counter} c SET refused = c.refused + 1,
                           refused_amount = c.refused_amount + %(amount)s,
                           last_refused_at = %(now)s
    FROM (SELECT id FROM locked WHERE blocks AND spent + reserved + %(amount)s > lim
          ORDER BY array_position(%(ids)s::bigint[], id) LIMIT 1) refusing, verdict
    WHERE c.id = refusing.id AND verdict.fresh
    RETURNING c.id
), claim AS (
    INSERT INTO {reservation} ({columns})
    SELECT %(request_id)s, %(amount)s, %(counter_ids)s, %(now)s, %(api_key_id)s, %(user_id)s,
           %(team_id)s, %(requested_model)s, %(holder)s
    FROM verdict WHERE verdict.fits AND verdict.fresh
    RETURNING 1
)
SELECT verdict.fits, verdict.fresh, (SELECT count(*) FROM claim), (SELECT count(*) FROM reserve),
       (SELECT json_agg(json_build_array(id, spent::text, reserved::text, limit_alerted_at)
                        ORDER BY id) FROM locked)
FROM verdict
"""


def reserve(*, request_id: str, amount: Decimal, limits: list[tuple[int, Decimal, bool]],
            now: datetime, api_key_id: int | None, user_id: int | None, team_id: int | None,
            requested_model: str, holder: str = "") -> Reservation:
    """Run the admission statement for `limits` ((counter id, USD limit, blocks) per applicable
    limit) and return what it found and did. Raises IntegrityError when the team's request id
    is already reserved (in flight)."""
    counter_ids = sorted({counter_id for counter_id, _, _ in limits})
    params = {
        "ids": raw_rows.pg_array([c for c, _, _ in limits]),
        "limits": raw_rows.pg_array([lim for _, lim, _ in limits]),
        "blocks": raw_rows.pg_array([b for _, _, b in limits]), "amount": amount,
        "request_id": request_id,
        "now": now, "api_key_id": api_key_id, "user_id": user_id, "team_id": team_id,
        "requested_model": requested_model, "holder": holder,
        "counter_ids": BudgetReservation._meta.get_field("counter_ids").get_db_prep_save(
            counter_ids, connection),
    }
    with connection.cursor() as cursor:
        cursor.execute(_sql(), params)
        fits, fresh, claimed, _, rows = cursor.fetchone()
    counters = {
        int(pk): LockedCounter(pk=int(pk), spent=Decimal(spent), reserved=Decimal(reserved),
                               limit_alerted_at=_timestamp(alerted))
        for pk, spent, reserved, alerted in rows or []
    }
    assert claimed == (1 if fits and fresh else 0)
    return Reservation(fits=fits, fresh=fresh, counters=counters)


def _timestamp(value) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


@cache
def _applicable_sql() -> str:
    budget, counter = raw_rows.table(Budget), raw_rows.table(BudgetCounter)
    columns = ", ".join(raw_rows.columns(Budget, "b"))
    return f"""
SELECT {columns}, c.id, c.period, c.period_start
FROM {budget} b
LEFT JOIN {counter} c ON c.budget_id = b.id AND c.period_start = ANY(%(starts)s::timestamptz[])
WHERE (b.scope = '{BudgetScope.KEY}' AND b.api_key_id = %(api_key_id)s)
   OR (b.scope = '{BudgetScope.USER}' AND b.user_id = %(user_id)s)
   OR (b.scope = '{BudgetScope.TEAM}' AND b.team_id = %(team_id)s)
   OR b.scope = '{BudgetScope.GLOBAL}'
ORDER BY b.id
"""


def applicable(*, principal: Principal, now: datetime) -> tuple[list[Budget],
                                                                dict[tuple, BudgetCounter]]:
    """Return the budgets whose scope covers `principal` (as `Budget.objects.for_principal`)
    and their counters for the periods containing `now`, keyed like `PeriodLimit.key`, in
    one query. Counters carry their key and pk only; missing ones are simply absent."""
    starts = {period: period_start(period, now) for period in BudgetPeriod.values}
    params = {"starts": raw_rows.pg_array(sorted(set(starts.values()))),
              "api_key_id": principal.api_key_id, "user_id": principal.user_id,
              "team_id": principal.team_id}
    with connection.cursor() as cursor:
        cursor.execute(_applicable_sql(), params)
        rows = cursor.fetchall()
    width = raw_rows.width(Budget)
    pk = Budget._meta.concrete_fields.index(Budget._meta.pk)
    budgets: dict[int, Budget] = {}
    counters: dict[tuple, BudgetCounter] = {}
    for row in rows:
        budget_id = row[pk]
        if budget_id not in budgets:
            budgets[budget_id] = raw_rows.from_row(Budget, row[:width])
        counter_id, period, start = row[width:]
        if counter_id is not None and starts.get(period) == start:
            counters[(budget_id, period, start)] = BudgetCounter(
                pk=counter_id, budget_id=budget_id, period=period, period_start=start)
    return list(budgets.values()), counters
