"""Savings per team and per period for the admin's savings page, all from `savings_summary`.

Periods are whole UTC days (a day, or a week for long windows), as the dashboard's window, so the
figures line up with the ledger's day roll-ups.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.db.models import DecimalField, F, Sum, Value
from django.db.models.functions import Coalesce

from budgets.rollups import rollups_since
from llmops.observability.savings import SavingsSummary, savings_summary

# Windows longer than this many days are broken down by week instead of by day.
DAILY_UP_TO_DAYS = 31


@dataclass(frozen=True)
class PeriodSavings:
    """The savings of one period [start, end)."""

    start: datetime
    end: datetime
    summary: SavingsSummary


@dataclass(frozen=True)
class TeamSavings:
    """The savings of one team over the window."""

    team_id: int
    team_name: str
    summary: SavingsSummary


def period_days(days: int) -> int:
    """Return the length in days of the periods a window of `days` days is broken into."""
    return 1 if days <= DAILY_UP_TO_DAYS else 7


def savings_per_period(*, since: datetime, until: datetime, step_days: int,
                       team_id: int | None = None) -> list[PeriodSavings]:
    """Return the savings of each `step_days`-day period from `since` to `until`, oldest first
    (one `savings_summary` per period; the last one may be shorter)."""
    periods, start = [], since
    while start < until:
        end = min(start + timedelta(days=step_days), until)
        periods.append(PeriodSavings(start=start, end=end, summary=savings_summary(
            since=start, until=end, team_id=team_id)))
        start = end
    return periods


def savings_per_team(*, since: datetime, until: datetime | None = None,
                     limit: int) -> list[TeamSavings]:
    """Return the savings of the `limit` teams that spent most since `since` (from the roll-ups),
    costliest first."""
    zero = Value(Decimal(0), output_field=DecimalField(max_digits=30, decimal_places=12))
    teams = (rollups_since(since, until).filter(team__isnull=False)
             .values("team_id", team_name=F("team__name"))
             .annotate(cost=Coalesce(Sum("cost"), zero))
             .order_by("-cost", "team_name")[:limit])
    return [TeamSavings(team_id=row["team_id"], team_name=row["team_name"],
                        summary=savings_summary(since=since, until=until,
                                                team_id=row["team_id"]))
            for row in teams]
