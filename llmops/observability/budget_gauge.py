"""llm_budget_utilization_ratio: computed from the budget counters off the request path.

A beat task (`budget_utilization_refresh`) stores a snapshot in Django's cache (Redis when
configured, so every web process and the worker share it); /metrics publishes the snapshot through
`BudgetUtilizationCollector`. The series are bounded: one per team (and the global budget) and
period, plus the N budgets closest to their limit labelled by rank and scope kind — never by key
or user, which would be a series per caller.
"""

import logging
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass

from django.conf import settings
from django.core.cache import cache
from django.db.models import Case, F, FloatField, Value, When
from django.db.models.functions import Cast
from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily

logger = logging.getLogger(__name__)

SNAPSHOT_KEY = "llmops:observability:budget_utilization"


@dataclass(frozen=True)
class Utilization:
    """One budget's spend / limit in its current period."""

    scope_kind: str  # key, user, team, global
    scope: str  # "team:<name>", "global", or "" for key/user budgets (never published by name)
    budget_type: str  # day, month, total
    ratio: float
    top: bool = False  # one of the N budgets closest to their limit (published by rank)


def _limit_expression(period: str) -> Case | F:
    """Return the SQL expression of a counter's limit (defaults come from the settings)."""
    if period == "total":
        return F("budget__total_limit")
    column = "budget__daily_limit" if period == "day" else "budget__monthly_limit"
    default = settings.DEFAULT_DAILY_BUDGET if period == "day" else settings.DEFAULT_MONTHLY_BUDGET
    return Case(
        When(budget__uses_defaults=True, then=Value(default)),
        default=F(column),
    )


def current_budget_counters(period: str):
    """Return this period's counters of active, limited budgets, annotated with `ratio`."""
    from budgets.models import BudgetCounter
    from budgets.periods import period_start

    start = period_start(period, timezone.now())
    return (
        BudgetCounter.objects.filter(period=period, period_start=start, budget__is_active=True)
        .annotate(limit_usd=Cast(_limit_expression(period), FloatField()))
        .filter(limit_usd__gt=0)
        .annotate(ratio=Cast("spent", FloatField()) / F("limit_usd"))
    )


def budget_utilization_compute() -> list[Utilization]:
    """Return team and global budgets, then the top N of any scope (aggregated in the DB)."""
    top_n = settings.BUDGET_UTILIZATION_TOP_N
    rows: list[Utilization] = []
    top: list[Utilization] = []
    for period in ("day", "month", "total"):
        counters = current_budget_counters(period)
        named = counters.filter(budget__scope__in=["team", "global"]).values_list(
            "budget__scope", "budget__team__name", "ratio"
        )
        for scope_kind, team_name, ratio in named:
            scope = f"team:{team_name}" if scope_kind == "team" else "global"
            rows.append(Utilization(scope_kind, scope, period, float(ratio or 0.0), top=False))
        # Key and user budgets can number one per caller: only the N fullest leave the database.
        closest = counters.order_by("-ratio").values_list("budget__scope", "ratio")[:top_n]
        top.extend(Utilization(kind, "", period, float(ratio or 0.0), top=True)
                   for kind, ratio in closest)
    top.sort(key=lambda row: row.ratio, reverse=True)
    return rows + top[:top_n]


def budget_utilization_refresh() -> int:
    """Recompute the snapshot /metrics publishes; return how many rows it holds."""
    rows = budget_utilization_compute()
    snapshot = {"computed_at": time.time(), "rows": [asdict(row) for row in rows]}
    # Kept a little longer than two refresh periods: a dead beat shows as a recompute, not as
    # a frozen gauge.
    cache.set(SNAPSHOT_KEY, snapshot, timeout=settings.BUDGET_UTILIZATION_REFRESH_SECONDS * 3)
    return len(rows)


def budget_utilization_snapshot() -> list[Utilization]:
    """Return the latest snapshot, recomputing it when the beat task has not run recently."""
    snapshot = cache.get(SNAPSHOT_KEY)
    max_age = settings.BUDGET_UTILIZATION_REFRESH_SECONDS * 2
    if not snapshot or time.time() - snapshot.get("computed_at", 0) > max_age:
        budget_utilization_refresh()
        snapshot = cache.get(SNAPSHOT_KEY) or {"rows": []}
    return [Utilization(**row) for row in snapshot["rows"]]


class BudgetUtilizationCollector:
    """A Prometheus collector that publishes the budget snapshot at scrape time."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        per_scope = GaugeMetricFamily(
            "llm_budget_utilization_ratio",
            "Spent / limit of team and global budgets in their current period.",
            labels=["scope", "budget_type"],
        )
        top = GaugeMetricFamily(
            "llm_budget_top_utilization_ratio",
            "Spent / limit of the budgets closest to their limit, any scope, by rank.",
            labels=["rank", "scope_kind", "budget_type"],
        )
        try:
            rows = budget_utilization_snapshot()
        except Exception:  # a broken database must not break the whole scrape
            logger.exception("budget utilization snapshot failed")
            rows = []
        for row in (row for row in rows if not row.top):
            per_scope.add_metric([row.scope, row.budget_type], row.ratio)
        for rank, row in enumerate((row for row in rows if row.top), start=1):
            top.add_metric([str(rank), row.scope_kind, row.budget_type], row.ratio)
        yield per_scope
        yield top
