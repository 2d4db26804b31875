"""Budget writes: reserve before the call, charge the actual cost after it, keep that true.

`request_admit` and `request_settle` are the two calls the gateway pipeline makes; every
admitted request ends in exactly one `request_settle`, which writes its one ledger row.

How no budget is ever overspent, on PostgreSQL and SQLite alike: admission reserves an upper
bound on the locked counter rows of every (budget, period) that applies, or refuses with
nothing reserved (`admission`); settlement locks the same rows in the same order, moves the
reservation into `spent` at the actual cost and writes the ledger row in the same transaction
(`settlement`). Counters are keyed by period start, so a new day or month needs no reset.

This package is the public seam; each job lives in its own module, and callers import from here:

- `admission`: `request_admit`, refusals
- `settlement`: `UsageEntry` (the ledger record), `request_settle`
- `alerts`: threshold and limit alerts, their delivery
- `sweep`: holders' heartbeats, releasing the reservations of requests that died
- `budgets`: `budget_set`, seeding counters from the ledger
- `reconcile`: rebuilding counters from the ledger
- `archive`: exporting and deleting old raw ledger rows, retention
- `counters`: finding, locking and writing counter rows (shared by the above)
"""

from budgets.services.admission import Admission, request_admit
from budgets.services.alerts import alert_payload, alerts_redeliver, budget_alert_deliver
from budgets.services.archive import (
    ledger_archive,
    ledger_archived_before,
    ledger_retention_apply,
)
from budgets.services.budgets import KEEP, budget_counters_seed, budget_set
from budgets.services.reconcile import Drift, budget_counters_reconcile, counters_archived
from budgets.services.settlement import UsageEntry, request_settle
from budgets.services.sweep import (
    reservation_holder_heartbeat,
    reservations_release_stale,
    reservations_stale,
)

__all__ = [
    "KEEP",
    "Admission",
    "Drift",
    "UsageEntry",
    "alert_payload",
    "alerts_redeliver",
    "budget_alert_deliver",
    "budget_counters_reconcile",
    "budget_counters_seed",
    "budget_set",
    "counters_archived",
    "ledger_archive",
    "ledger_archived_before",
    "ledger_retention_apply",
    "request_admit",
    "request_settle",
    "reservation_holder_heartbeat",
    "reservations_release_stale",
    "reservations_stale",
]
