"""Reads for the built-in dashboard: every figure is aggregated by the database, never in Python."""

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.conf import settings
from django.db.models import Avg, Count, DecimalField, F, Q, Sum, Value
from django.db.models.functions import Coalesce, TruncDate

from budgets.models import UsageRecord
from llmops.models import ResponseFeedback
from routing.models import ModelProfile

ZERO = Value(Decimal(0), output_field=DecimalField(max_digits=20, decimal_places=12))
HIT = Q(cache_status__startswith="hit")


def _usd(field: str, **kwargs) -> Coalesce:
    return Coalesce(Sum(field, **kwargs), ZERO)


def _window(since: datetime):
    return UsageRecord.objects.filter(created_at__gte=since)


def usage_totals(*, since: datetime) -> dict:
    """Return request, spend, savings, cache and error totals since `since` (one query)."""
    totals = _window(since).aggregate(
        requests=Count("id"),
        cost=_usd("cost"),
        cache_saved=_usd("cost_saved", filter=HIT),
        hits=Count("id", filter=HIT),
        misses=Count("id", filter=Q(cache_status="miss")),
        errors=Count("id", filter=~Q(status="ok")),
        avg_latency_ms=Avg("latency_ms"),
        avg_ttft_ms=Avg("ttft_ms"),
    )
    lookups = totals["hits"] + totals["misses"]
    totals["hit_rate"] = totals["hits"] / lookups if lookups else None
    totals["routing_saved"] = routing_savings(since=since)
    return totals


def spend_per_day(*, since: datetime) -> list[dict]:
    """Return [{day, cost, saved, requests}] per UTC day, oldest first."""
    return list(
        _window(since).annotate(day=TruncDate("created_at")).values("day")
        .annotate(cost=_usd("cost"), saved=_usd("cost_saved", filter=HIT), requests=Count("id"))
        .order_by("day")
    )


def spend_per_model(*, since: datetime) -> list[dict]:
    """Return [{model, cost, requests}] for every served model, costliest first."""
    return list(
        _window(since).exclude(served_model="").values(model=F("served_model"))
        .annotate(cost=_usd("cost"), requests=Count("id"))
        .order_by("-cost", "model")
    )


def top_teams(*, since: datetime, limit: int) -> list[dict]:
    """Return the `limit` teams that spent most: [{team_name, cost, saved, requests}]."""
    return list(
        _window(since).filter(team__isnull=False).values(team_name=F("team__name"))
        .annotate(cost=_usd("cost"), saved=_usd("cost_saved", filter=HIT), requests=Count("id"))
        .order_by("-cost", "team_name")[:limit]
    )


def top_keys(*, since: datetime, limit: int) -> list[dict]:
    """Return the `limit` API keys that spent most, shown by prefix only."""
    return list(
        _window(since).filter(api_key__isnull=False)
        .values(prefix=F("api_key__prefix"), name=F("api_key__name"),
                team_name=F("team__name"))
        .annotate(cost=_usd("cost"), requests=Count("id"))
        .order_by("-cost", "prefix")[:limit]
    )


def routing_baseline() -> ModelProfile | None:
    """Return the profile routing savings are measured against: the priciest enabled one."""
    return (ModelProfile.objects.enabled()
            .order_by("-output_price_per_token", "-input_price_per_token").first())


def routing_savings(*, since: datetime) -> Decimal:
    """Return what `auto` routing saved against sending the same tokens to the baseline model."""
    baseline = routing_baseline()
    if baseline is None:
        return Decimal(0)
    routed = _window(since).filter(requested_model="auto", status="ok").exclude(HIT).aggregate(
        prompt=Coalesce(Sum("prompt_tokens"), 0),
        completion=Coalesce(Sum("completion_tokens"), 0),
        cost=_usd("cost"),
    )
    would_cost = (routed["prompt"] * baseline.input_price_per_token
                  + routed["completion"] * baseline.output_price_per_token)
    return max(would_cost - routed["cost"], Decimal(0))


@dataclass(frozen=True)
class BudgetRow:
    """One budget in its current period, for display (staff only, so named by its target)."""

    target: str
    period: str
    spent: float
    limit: float
    ratio: float


def budgets_closest_to_limit(*, limit: int) -> list[BudgetRow]:
    """Return the `limit` budgets with the highest spent / limit in their current period."""
    from llmops.observability.budget_gauge import current_budget_counters

    rows: list[BudgetRow] = []
    for period in ("day", "month", "total"):
        counters = current_budget_counters(period).order_by("-ratio").values_list(
            "budget__scope", "budget__api_key__prefix", "budget__user__username",
            "budget__team__name", "spent", "limit_usd", "ratio",
        )[:limit]
        for scope, prefix, username, team, spent, limit_usd, ratio in counters:
            target = {"key": f"key {prefix}", "user": f"user {username}",
                      "team": f"team {team}"}.get(scope, "global")
            rows.append(BudgetRow(target, period, float(spent), float(limit_usd), float(ratio)))
    rows.sort(key=lambda row: row.ratio, reverse=True)
    return rows[:limit]


def quality_per_model(*, since: datetime) -> list[dict]:
    """Return [{model, source, score, count, hallucinations}] of verdicts given since `since`."""
    return list(
        ResponseFeedback.objects.filter(created_at__gte=since)
        .values("model", "source")
        .annotate(score=Avg("score"), count=Count("id"),
                  hallucinations=Count("id", filter=Q(hallucination=True)))
        .order_by("model", "source")
    )


def dashboard_data(*, since: datetime) -> dict:
    """Return everything the dashboard page shows for the window starting at `since`."""
    top_n = settings.DASHBOARD_TOP_N
    return {
        "totals": usage_totals(since=since),
        "per_day": spend_per_day(since=since),
        "per_model": spend_per_model(since=since),
        "top_teams": top_teams(since=since, limit=top_n),
        "top_keys": top_keys(since=since, limit=top_n),
        "budgets": budgets_closest_to_limit(limit=top_n),
        "quality": quality_per_model(since=since),
    }
