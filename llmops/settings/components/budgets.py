"""Settings for budgets: default per-key limits, the reservation sweep, alert delivery, the
ledger's admin window and retention."""

from decimal import Decimal

from llmops.settings.env import BASE_DIR, env


def _usd(name: str) -> Decimal | None:
    """Read a USD amount as an exact Decimal; unset or empty means "no limit" (None)."""
    raw = env.str(name, default="").strip()
    return Decimal(raw) if raw else None


# Limits for API keys that have no budget of their own (the seed's names). Unset or empty means
# unlimited: a fresh install must not refuse requests nobody budgeted for. Keys, users, teams and
# the whole gateway get explicit limits with `manage.py set_budget`.
DEFAULT_DAILY_BUDGET = _usd("DEFAULT_DAILY_BUDGET")
DEFAULT_MONTHLY_BUDGET = _usd("DEFAULT_MONTHLY_BUDGET")

# Every gateway process says it is alive every BUDGET_HEARTBEAT_SECONDS and, on the same beat,
# sweeps: a reservation whose process stopped heartbeating BUDGET_HOLDER_TIMEOUT_SECONDS ago
# (killed, frozen) is released and charged, so a dead process's money is back within about
# timeout + heartbeat seconds, while a live process keeps its reservations however long its
# requests (streams) run. Three missed beats make a process dead.
BUDGET_HEARTBEAT_SECONDS = env.float("BUDGET_HEARTBEAT_SECONDS", default=10.0)
BUDGET_HOLDER_TIMEOUT_SECONDS = env.float("BUDGET_HOLDER_TIMEOUT_SECONDS",
                                          default=3 * BUDGET_HEARTBEAT_SECONDS)
# Reservations made outside a gateway process (scripts, direct service calls) have no holder to
# vouch for them: they are released once this old.
BUDGET_RESERVATION_TIMEOUT_SECONDS = env.int("BUDGET_RESERVATION_TIMEOUT_SECONDS", default=900)

# Alert delivery: webhook timeout, retries of the Celery task, the sender of alert emails.
BUDGET_ALERT_WEBHOOK_TIMEOUT_SECONDS = env.float("BUDGET_ALERT_WEBHOOK_TIMEOUT_SECONDS",
                                                 default=5.0)
BUDGET_ALERT_MAX_RETRIES = env.int("BUDGET_ALERT_MAX_RETRIES", default=5)
BUDGET_ALERT_FROM_EMAIL = env("BUDGET_ALERT_FROM_EMAIL", default="llmops@localhost")

# The ledger at scale (docs/ledger.md). The admin's ledger list shows the last
# LEDGER_ADMIN_DEFAULT_DAYS UTC days until a date filter or a search asks for others.
LEDGER_ADMIN_DEFAULT_DAYS = env.int("LEDGER_ADMIN_DEFAULT_DAYS", default=7)
# Raw ledger rows older than LEDGER_RETENTION_DAYS days are archived (a CSV file per run in
# LEDGER_ARCHIVE_DIR) and deleted once a day by Celery beat; unset or empty keeps every row.
# Roll-ups and budget counters are never touched, so reports keep their history.
LEDGER_RETENTION_DAYS = env.int("LEDGER_RETENTION_DAYS", default=None)
LEDGER_ARCHIVE_DIR = env.str("LEDGER_ARCHIVE_DIR", default=str(BASE_DIR / "ledger-archive"))
# PostgreSQL: Celery beat keeps the ledger's monthly partitions created for the current UTC month
# and this many after it (a row no month holds yet lands in the DEFAULT partition).
LEDGER_PARTITIONS_AHEAD = env.int("LEDGER_PARTITIONS_AHEAD", default=2)
