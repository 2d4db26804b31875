"""Settings for budgets: default per-key limits, the reservation sweep, alert delivery."""

from decimal import Decimal

from llmops.settings.env import env


def _usd(name: str) -> Decimal | None:
    """Read a USD amount as an exact Decimal; unset or empty means "no limit" (None)."""
    raw = env.str(name, default="").strip()
    return Decimal(raw) if raw else None


# Limits for API keys that have no budget of their own (the seed's names). Unset or empty means
# unlimited: a fresh install must not refuse requests nobody budgeted for. Keys, users, teams and
# the whole gateway get explicit limits with `manage.py set_budget`.
DEFAULT_DAILY_BUDGET = _usd("DEFAULT_DAILY_BUDGET")
DEFAULT_MONTHLY_BUDGET = _usd("DEFAULT_MONTHLY_BUDGET")

# A reservation older than this whose request never settled (process killed) is released by the
# sweep. Must exceed the longest request the gateway serves, streams included.
BUDGET_RESERVATION_TIMEOUT_SECONDS = env.int("BUDGET_RESERVATION_TIMEOUT_SECONDS", default=900)

# Alert delivery: webhook timeout, retries of the Celery task, the sender of alert emails.
BUDGET_ALERT_WEBHOOK_TIMEOUT_SECONDS = env.float("BUDGET_ALERT_WEBHOOK_TIMEOUT_SECONDS",
                                                 default=5.0)
BUDGET_ALERT_MAX_RETRIES = env.int("BUDGET_ALERT_MAX_RETRIES", default=5)
BUDGET_ALERT_FROM_EMAIL = env("BUDGET_ALERT_FROM_EMAIL", default="llmops@localhost")
