"""Budget periods in UTC: where the day, month or lifetime containing an instant starts and ends."""

from datetime import UTC, datetime, timedelta

from budgets.models import BudgetPeriod

# The lifetime ("total") period has one counter per budget, keyed by this fixed start.
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def period_start(period: str, at: datetime) -> datetime:
    """Return the UTC start of the `period` containing `at`."""
    at = at.astimezone(UTC)
    if period == BudgetPeriod.DAY:
        return at.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == BudgetPeriod.MONTH:
        return at.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    if period == BudgetPeriod.TOTAL:
        return EPOCH
    raise ValueError(f"Unknown budget period {period!r}")


def period_end(period: str, start: datetime) -> datetime | None:
    """Return the exclusive end of the period starting at `start` (None: open-ended)."""
    if period == BudgetPeriod.DAY:
        return start + timedelta(days=1)
    if period == BudgetPeriod.MONTH:
        # Day 28 + 4 days always lands in the next month; then snap to its first day.
        return (start.replace(day=28) + timedelta(days=4)).replace(day=1)
    if period == BudgetPeriod.TOTAL:
        return None
    raise ValueError(f"Unknown budget period {period!r}")
