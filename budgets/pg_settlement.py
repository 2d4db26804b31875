"""Settlement on PostgreSQL in one statement: release the reservation, write the ledger row and
charge the counters.

The common case of `budgets.services.request_settle` (its reservation is still there) done as
separate ORM statements in a transaction costs five round trips plus BEGIN and COMMIT, and
holds the key's counter rows locked across the Python in between (each reply must win the GIL
back first). Here it is one autocommit statement: the reservation row is deleted (whoever
deletes it releases it, exactly as in the ORM path), the ledger row inserted, and only then are
the counters locked in primary-key order (as admission locks them) and charged, and their new
values returned so the caller can tell whether an alert is due.

When the reservation is gone (a duplicate settle, or the sweep presumed the request dead) the
statement changes nothing and the caller takes the ORM path, which handles those cases.
"""

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import cache

from django.db import connection

from budgets import rollups
from budgets.models import Budget, BudgetCounter, BudgetReservation, UsageRecord
from llmops import raw_rows


@dataclass(frozen=True)
class ChargedCounter:
    """A counter after the charge, with what decides whether an alert is due."""

    pk: int
    period: str
    spent: Decimal
    threshold_alerted: bool
    limit_alerted: bool
    budget: Budget  # unsaved: only the fields `Budget.limit_for` and the threshold read

    def alert_due(self) -> bool:
        limit = self.budget.limit_for(self.period)
        if not limit:
            return False
        return ((not self.threshold_alerted and self.spent >= limit * self.budget.alert_threshold)
                or (not self.limit_alerted and self.spent >= limit))


@dataclass(frozen=True)
class Settlement:
    """What the statement did: `released` (the reservation was there, so the row was written
    and the counters charged) and the charged counters."""

    released: bool
    record_id: int | None
    counters: list[ChargedCounter]


_LEDGER_FIELDS = [f for f in UsageRecord._meta.concrete_fields if not f.primary_key]


@cache
def _sql(with_rollups: bool = True, late: bool = False) -> str:
    # Built once per process: the hot path only executes it. The ledger row and its roll-up
    # rows arrive as one JSON parameter each (raw_rows.pg_json): a parameter per column made
    # psycopg quote ~100 values and re-parse the statement on every run.
    qn = connection.ops.quote_name
    counter, reservation, ledger, budget = map(
        raw_rows.table, (BudgetCounter, BudgetReservation, UsageRecord, Budget))
    columns = ", ".join(qn(f.column) for f in _LEDGER_FIELDS)
    # The row's roll-ups (one row per grain, `late`: coarse grains included), once the row is
    # in and after the counters are locked (the scalar subquery runs `charged` first):
    # counters, then roll-ups, the one lock order.
    rolled = (", rolled AS (" + rollups.pg_settlement_upsert(
        "rollups", late=late, source="recorded",
        condition="(SELECT count(*) FROM charged) >= 0") + " RETURNING 1)"
              if with_rollups else "")
    return " ".join(f"""
WITH released AS (
    DELETE FROM {reservation} WHERE request_id = %(request_id)s AND team_id = %(team_id)s
    RETURNING 1
), recorded AS (
    INSERT INTO {ledger} ({columns})
    SELECT {columns} FROM jsonb_populate_record(NULL::{ledger}, %(row)s::jsonb), released
    RETURNING id
), locked AS (
    SELECT c.id FROM {counter} c
    WHERE c.id = ANY(%(counter_ids)s::bigint[]) AND EXISTS (SELECT 1 FROM recorded)
      AND (%(release)s > 0 OR %(cost)s > 0)
    ORDER BY c.id
    FOR UPDATE OF c
), charged AS (
    UPDATE {counter} c
    SET reserved = GREATEST(c.reserved - %(release)s, 0), spent = c.spent + %(cost)s,
        updated_at = %(now)s
    FROM locked WHERE c.id = locked.id
    RETURNING c.id, c.budget_id, c.period, c.spent, c.threshold_alerted_at IS NOT NULL AS t,
              c.limit_alerted_at IS NOT NULL AS l
){rolled}
SELECT (SELECT count(*) FROM released), (SELECT id FROM recorded),
       (SELECT json_agg(json_build_array(ch.id, ch.period, ch.spent::text, ch.t, ch.l,
                                         b.daily_limit::text, b.monthly_limit::text,
                                         b.total_limit::text, b.uses_defaults,
                                         b.alert_threshold::text) ORDER BY ch.id)
        FROM charged ch JOIN {budget} b ON b.id = ch.budget_id)
""".split())


def settle(*, record: UsageRecord, release: Decimal, cost: Decimal, counter_ids: list[int],
           now: datetime) -> Settlement:
    """Run the settlement statement for the unsaved ledger row `record`: if its reservation is
    still there, delete it, insert `record` (its pk is set), take `release` out of the
    counters' reserved and add `cost` to their spent."""
    row = raw_rows.json_values({f.column: getattr(record, f.attname) for f in _LEDGER_FIELDS})
    params = {"row": raw_rows.pg_json(row), "request_id": record.request_id,
              "counter_ids": raw_rows.pg_array(sorted(counter_ids)), "release": release,
              "cost": cost, "now": now, "team_id": record.team_id}
    grains = rollups.grains_of(record, now=now)
    if rollups.INLINE:
        params["rollups"] = rollups.pg_settlement_rows(record, grains)
    with connection.cursor() as cursor:
        cursor.execute(_sql(rollups.INLINE, grains != rollups.INLINE_GRAINS), params)
        released, record_id, rows = cursor.fetchone()
    if record_id is not None:
        record.pk = record_id
        record._state.adding = False
    return Settlement(released=bool(released), record_id=record_id, counters=[
        ChargedCounter(pk=int(pk), period=period, spent=Decimal(spent), threshold_alerted=t,
                       limit_alerted=lim, budget=Budget(
                           daily_limit=_decimal(daily), monthly_limit=_decimal(monthly),
                           total_limit=_decimal(total), uses_defaults=uses_defaults,
                           alert_threshold=Decimal(threshold)))
        for pk, period, spent, t, lim, daily, monthly, total, uses_defaults, threshold
        in rows or []])


def _decimal(value: str | None) -> Decimal | None:
    return None if value is None else Decimal(value)
