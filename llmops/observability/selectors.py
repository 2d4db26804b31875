"""Reads for the built-in dashboard: every figure is aggregated by the database, never in Python."""

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.conf import settings
from django.db.models import Avg, Count, DecimalField, F, Q, Sum, Value
from django.db.models.functions import Coalesce, TruncDate

from budgets.models import BudgetCounter, RollupGrain
from budgets.rollups import rollups_since
from llmops.models import RateLimitRefusal, ResponseFeedback
from llmops.observability.savings import savings_summary, verified_hits

ZERO = Value(Decimal(0), output_field=DecimalField(max_digits=30, decimal_places=12))
HIT = Q(cache_status__startswith="hit")

# Every usage figure comes from the ledger's roll-ups (budgets.rollups), never from raw rows: a
# window starts on the hour of `since` and reads whole days as rows of a coarse day grain (per
# model or per key: a few rows per day, whatever the traffic's mix), partial days as hour rows.


def _usd(field: str, **kwargs) -> Coalesce:
    return Coalesce(Sum(field, **kwargs), ZERO)


def _count(**kwargs) -> Coalesce:
    return Coalesce(Sum("request_count", **kwargs), 0)


def _by_model(since: datetime):
    return rollups_since(since, days=RollupGrain.DAY_BY_MODEL)


def _by_key(since: datetime):
    return rollups_since(since, days=RollupGrain.DAY_BY_KEY)


def _average(total: int | None, count: int | None) -> float | None:
    return total / count if count else None


def usage_totals(*, since: datetime) -> dict:
    """Return request, spend, cache and error totals since `since` (one query); savings are
    `llmops.observability.savings.savings_summary`'s."""
    totals = _by_model(since).aggregate(
        requests=_count(),
        cost=_usd("cost"),
        hits=_count(filter=HIT),
        misses=_count(filter=Q(cache_status="miss")),
        errors=_count(filter=~Q(status="ok")),
        latency_ms_sum=Sum("latency_ms_sum"), latency_count=Sum("latency_count"),
        ttft_ms_sum=Sum("ttft_ms_sum"), ttft_count=Sum("ttft_count"),
    )
    totals["avg_latency_ms"] = _average(totals.pop("latency_ms_sum"),
                                        totals.pop("latency_count"))
    totals["avg_ttft_ms"] = _average(totals.pop("ttft_ms_sum"), totals.pop("ttft_count"))
    lookups = totals["hits"] + totals["misses"]
    totals["hit_rate"] = totals["hits"] / lookups if lookups else None
    return totals


def spend_per_day(*, since: datetime) -> list[dict]:
    """Return [{day, cost, saved, requests}] per UTC day, oldest first."""
    return list(
        _by_model(since).annotate(day=TruncDate("start")).values("day")
        .annotate(cost=_usd("cost"), saved=_usd("cost_saved", filter=HIT), requests=_count())
        .order_by("day")
    )


def spend_per_model(*, since: datetime) -> list[dict]:
    """Return [{model, cost, requests}] for every served model, costliest first."""
    return list(
        _by_model(since).exclude(served_model="").values(model=F("served_model"))
        .annotate(cost=_usd("cost"), requests=_count())
        .order_by("-cost", "model")
    )


def top_teams(*, since: datetime, limit: int) -> list[dict]:
    """Return the `limit` teams that spent most: [{team_name, cost, saved, requests}]."""
    return list(
        _by_key(since).filter(team__isnull=False).values(team_name=F("team__name"))
        .annotate(cost=_usd("cost"), saved=_usd("hit_cost_saved"), requests=_count())
        .order_by("-cost", "team_name")[:limit]
    )


def top_keys(*, since: datetime, limit: int) -> list[dict]:
    """Return the `limit` API keys that spent most, shown by prefix only."""
    return list(
        _by_key(since).filter(api_key__isnull=False)
        .values(prefix=F("api_key__prefix"), name=F("api_key__name"),
                team_name=F("team__name"))
        .annotate(cost=_usd("cost"), requests=_count())
        .order_by("-cost", "prefix")[:limit]
    )


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
            target = _budget_target(scope, prefix, username, team)
            rows.append(BudgetRow(target, period, float(spent), float(limit_usd), float(ratio)))
    rows.sort(key=lambda row: row.ratio, reverse=True)
    return rows[:limit]


def _budget_target(scope: str, prefix: str | None, username: str | None, team: str | None) -> str:
    return {"key": f"key {prefix}", "user": f"user {username}",
            "team": f"team {team}"}.get(scope, "global")


# --- Refusals ------------------------------------------------------------------------------------
# Budget refusals are counted per budget period (on the counter of the limit that refused), rate
# refusals per key and UTC day: a window takes the budget periods that refused a request in it
# and the days it covers, so a window starting mid-period includes that period's earlier ones.


def _refusing_counters(since: datetime):
    return BudgetCounter.objects.filter(last_refused_at__gte=since, refused__gt=0)


def _rate_refusals(since: datetime):
    return RateLimitRefusal.objects.filter(day__gte=since.date())


def refusal_totals(*, since: datetime) -> dict:
    """Return requests refused since `since`: {budget, budget_amount (USD), rate_limit, total}.
    Two aggregate queries over the counters, never the ledger (refusals have no ledger row)."""
    budget = _refusing_counters(since).aggregate(
        count=Coalesce(Sum("refused"), 0),
        amount=Coalesce(Sum("refused_amount"),
                        Value(Decimal(0), output_field=DecimalField(max_digits=30,
                                                                    decimal_places=12))))
    rate = _rate_refusals(since).aggregate(count=Coalesce(Sum("refused"), 0))["count"]
    return {"budget": budget["count"], "budget_amount": budget["amount"], "rate_limit": rate,
            "total": budget["count"] + rate}


@dataclass(frozen=True)
class RefusedBudgetRow:
    """One budget period that refused requests (staff only, so named by its target)."""

    target: str
    period: str
    period_start: datetime
    refused: int
    refused_amount: Decimal
    last_refused_at: datetime


def most_refused_budgets(*, since: datetime, limit: int) -> list[RefusedBudgetRow]:
    """Return the `limit` budget periods that refused most requests, of those that refused one
    since `since` (one query)."""
    rows = _refusing_counters(since).order_by("-refused", "-last_refused_at").values_list(
        "budget__scope", "budget__api_key__prefix", "budget__user__username",
        "budget__team__name", "period", "period_start", "refused", "refused_amount",
        "last_refused_at",
    )[:limit]
    return [RefusedBudgetRow(_budget_target(scope, prefix, username, team), period, start,
                             refused, amount, last)
            for scope, prefix, username, team, period, start, refused, amount, last in rows]


def most_rate_limited_keys(*, since: datetime, limit: int) -> list[dict]:
    """Return the `limit` API keys whose rate limit refused most requests on the UTC days since
    `since`, by prefix: [{prefix, name, team_name, refused}] (one grouped query)."""
    return list(
        _rate_refusals(since)
        .values(prefix=F("api_key__prefix"), name=F("api_key__name"),
                team_name=F("api_key__team__name"))
        .annotate(refused=Sum("refused"))
        .order_by("-refused", "prefix")[:limit]
    )


def quality_per_model(*, since: datetime, team_id: int | None = None) -> list[dict]:
    """Return [{model, source, score, count, hallucinations}] of verdicts given since `since`
    (on the answers of one team, or all)."""
    verdicts = ResponseFeedback.objects.filter(created_at__gte=since)
    if team_id is not None:
        verdicts = verdicts.filter(usage_record__team_id=team_id)
    return list(
        verdicts.values("model", "source")
        .annotate(score=Avg("score"), count=Count("id"),
                  hallucinations=Count("id", filter=Q(hallucination=True)))
        .order_by("model", "source")
    )


def dashboard_data(*, since: datetime) -> dict:
    """Return everything the dashboard page shows for the window starting at `since`."""
    top_n = settings.DASHBOARD_TOP_N
    return {
        "totals": usage_totals(since=since),
        "savings": savings_summary(since=since),
        "per_day": spend_per_day(since=since),
        "per_model": spend_per_model(since=since),
        "top_teams": top_teams(since=since, limit=top_n),
        "top_keys": top_keys(since=since, limit=top_n),
        "budgets": budgets_closest_to_limit(limit=top_n),
        "refusals": refusal_totals(since=since),
        "refused_budgets": most_refused_budgets(since=since, limit=top_n),
        "rate_limited_keys": most_rate_limited_keys(since=since, limit=top_n),
        "quality": quality_per_model(since=since),
        "verified": verified_hits(limit=top_n),
    }
