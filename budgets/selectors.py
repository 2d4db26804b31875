"""Reads for budgets and the ledger: applicable budgets, remaining amounts, spend reports."""

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.conf import settings
from django.db.models import Q, QuerySet, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from budgets.models import (
    Budget,
    BudgetCounter,
    BudgetPeriod,
    BudgetReservation,
    BudgetScope,
    RollupGrain,
    UsageRecord,
)
from budgets.money import USD, ZERO
from budgets.periods import period_end, period_start
from budgets.rollups import rollups_since
from llmops.principal import Principal


def usd_str(amount) -> str | None:
    """Return a USD amount as a fixed 12-decimal string for JSON (None stays None)."""
    # Format "f": str() of a zero quantized to 12 places is "0E-12".
    return None if amount is None else f"{Decimal(amount).quantize(USD):f}"


def defaults_configured() -> bool:
    """Return whether DEFAULT_DAILY_BUDGET or DEFAULT_MONTHLY_BUDGET limits keys."""
    return (getattr(settings, "DEFAULT_DAILY_BUDGET", None) is not None
            or getattr(settings, "DEFAULT_MONTHLY_BUDGET", None) is not None)


def budgets_for_principal(*, principal: Principal) -> list[Budget]:
    """Return every budget (active or not) whose scope covers `principal`. One indexed query."""
    return list(Budget.objects.for_principal(principal))


def budget_needs_default(*, budgets: list[Budget]) -> bool:
    """Return whether the key behind `budgets` has no budget of its own and defaults apply.

    A key with its own budget, even an inactive one, is governed by that budget alone.
    """
    return defaults_configured() and not any(b.scope == BudgetScope.KEY for b in budgets)


@dataclass(frozen=True)
class PeriodLimit:
    """One limit that applies to a request now: a budget, a period, its start and USD limit."""

    budget: Budget
    period: str
    start: datetime
    limit: Decimal

    @property
    def key(self) -> tuple[int, str, datetime]:
        return (self.budget.pk, self.period, self.start)


_SCOPE_ORDER = {BudgetScope.KEY: 0, BudgetScope.USER: 1, BudgetScope.TEAM: 2, BudgetScope.GLOBAL: 3}
_PERIOD_ORDER = {BudgetPeriod.DAY: 0, BudgetPeriod.MONTH: 1, BudgetPeriod.TOTAL: 2}


def period_limits(*, budgets: list[Budget], at: datetime) -> list[PeriodLimit]:
    """Return the limits of the active `budgets` for the periods containing `at`.

    Ordered narrowest first (key before global, day before total) so a refusal names the most
    specific budget.
    """
    out = [
        PeriodLimit(budget=b, period=period, start=period_start(period, at), limit=limit)
        for b in budgets if b.is_active
        for period, limit in b.limits().items()
    ]
    out.sort(key=lambda p: (_SCOPE_ORDER[p.budget.scope], _PERIOD_ORDER[p.period]))
    return out


def budget_remaining(*, principal: Principal, now: datetime | None = None) -> Decimal | None:
    """Return the least USD left across the blocking budgets that apply (None: unlimited).

    Two indexed queries (budgets, then their current counters); a key that will get the default
    budget on its first request counts with the default limits already.
    """
    now = now or timezone.now()
    budgets = budgets_for_principal(principal=principal)
    if budget_needs_default(budgets=budgets):
        budgets.append(Budget(scope=BudgetScope.KEY, api_key_id=principal.api_key_id,
                              uses_defaults=True))
    limits = [p for p in period_limits(budgets=budgets, at=now) if p.budget.blocks]
    if not limits:
        return None
    used = {}
    saved_ids = [p.budget.pk for p in limits if p.budget.pk is not None]
    if saved_ids:
        rows = BudgetCounter.objects.filter(
            budget_id__in=saved_ids, period_start__in={p.start for p in limits},
        ).values_list("budget_id", "period", "period_start", "spent", "reserved")
        used = {(b, period, start): spent + reserved for b, period, start, spent, reserved in rows}
    return min(max(p.limit - used.get(p.key, ZERO), ZERO) for p in limits)


# --- Ledger reads ------------------------------------------------------------------------------


def usage_for_scope(*, budget: Budget, qs: QuerySet | None = None) -> QuerySet:
    """Return the ledger rows a budget's scope covers."""
    qs = UsageRecord.objects.all() if qs is None else qs
    if budget.scope == BudgetScope.KEY:
        return qs.filter(api_key_id=budget.api_key_id)
    if budget.scope == BudgetScope.USER:
        return qs.filter(user_id=budget.user_id)
    if budget.scope == BudgetScope.TEAM:
        return qs.filter(team_id=budget.team_id)
    return qs


def ledger_spent(*, budget: Budget, period: str, start: datetime) -> Decimal:
    """Return what the ledger says `budget` spent in the period starting at `start`."""
    qs = usage_for_scope(budget=budget).filter(created_at__gte=start)
    end = period_end(period, start)
    if end is not None:
        qs = qs.filter(created_at__lt=end)
    total = qs.aggregate(total=Sum("cost"))["total"]
    return Decimal(total or 0)


def reservations_by_counter() -> dict[int, Decimal]:
    """Return the USD held by outstanding reservations, per counter id."""
    held: dict[int, Decimal] = {}
    for amount, counter_ids in BudgetReservation.objects.values_list("amount", "counter_ids"):
        for counter_id in counter_ids:
            held[counter_id] = held.get(counter_id, ZERO) + amount
    return held


@dataclass
class ScopeSpend:
    """One line of a spend report: a scope's spend, savings and utilization in a period."""

    scope: str
    name: str
    requests: int
    spent: Decimal
    saved: Decimal
    cache_hits: int
    limit: Decimal | None
    budget_id: int | None = None
    refused: int = 0  # requests the budget refused in the period (`refusals_by_budget`)
    refused_amount: Decimal = ZERO

    @property
    def utilization(self) -> float | None:
        if not self.limit:
            return None
        return float(self.spent / self.limit)

    def as_dict(self) -> dict:
        return {
            "scope": self.scope, "name": self.name, "requests": self.requests,
            "spent": usd_str(self.spent), "saved": usd_str(self.saved),
            "cache_hits": self.cache_hits, "limit": usd_str(self.limit),
            "utilization": self.utilization, "budget_id": self.budget_id,
            "refused": self.refused, "refused_amount": usd_str(self.refused_amount),
        }


_GROUPS = (
    (BudgetScope.GLOBAL, None, None),
    (BudgetScope.TEAM, "team_id", "team__name"),
    (BudgetScope.USER, "user_id", "user__username"),
    (BudgetScope.KEY, "api_key_id", "api_key__prefix"),
)


def spend_report(*, period: str = BudgetPeriod.MONTH, team_name: str | None = None,
                 now: datetime | None = None) -> list[ScopeSpend]:
    """Return spend, savings and utilization per scope (global, teams, users, keys) for the
    current day or month, from the ledger's per-key day roll-ups. One grouped query per scope
    kind plus the budgets."""
    now = now or timezone.now()
    start = period_start(period, now)
    ledger = rollups_since(start, period_end(period, start), days=RollupGrain.DAY_BY_KEY)
    budgets = Budget.objects.select_related("api_key", "user", "team")
    if team_name is not None:
        ledger = ledger.filter(team__name=team_name)
        budgets = budgets.filter(Q(team__name=team_name) | Q(api_key__team__name=team_name))
    by_target = {}
    for b in budgets:
        target = {BudgetScope.KEY: b.api_key_id, BudgetScope.USER: b.user_id,
                  BudgetScope.TEAM: b.team_id, BudgetScope.GLOBAL: None}[b.scope]
        by_target[(b.scope, target)] = b
    rows: list[ScopeSpend] = []
    seen = set()
    totals = {"requests": _requests(), "spent": Sum("cost"), "saved": Sum("cost_saved"),
              "hits": _total("hits")}
    for scope, id_field, name_field in _GROUPS:
        if scope == BudgetScope.GLOBAL and team_name is not None:
            continue
        if id_field is None:
            # One row for the whole gateway. (`values()` with no fields would group by every
            # column of the ledger: one "global" row per request.)
            whole = ledger.aggregate(**totals)
            grouped = [whole] if whole["requests"] else []
        else:
            grouped = ledger.values(id_field, name_field).annotate(**totals).order_by(id_field)
        for g in grouped:
            target = g[id_field] if id_field else None
            if id_field and target is None:
                continue
            budget = by_target.get((scope, target))
            seen.add((scope, target))
            rows.append(ScopeSpend(
                scope=scope, name=str(g[name_field]) if name_field else "global",
                requests=g["requests"], spent=Decimal(g["spent"] or 0),
                saved=Decimal(g["saved"] or 0), cache_hits=g["hits"],
                limit=budget.limit_for(period) if budget and budget.is_active else None,
                budget_id=budget.pk if budget else None,
            ))
    # Budgets with no spend yet still belong in the report.
    for (scope, target), b in by_target.items():
        if (scope, target) in seen or (scope == BudgetScope.GLOBAL and team_name is not None):
            continue
        rows.append(ScopeSpend(scope=scope, name=b.target_label.split(" ", 1)[-1], requests=0,
                               spent=ZERO, saved=ZERO, cache_hits=0,
                               limit=b.limit_for(period) if b.is_active else None,
                               budget_id=b.pk))
    refusals = refusals_by_budget(period=period, start=start)
    for row in rows:
        row.refused, row.refused_amount = refusals.get(row.budget_id, (0, ZERO))
    order = {s: i for i, (s, _, _) in enumerate(_GROUPS)}
    rows.sort(key=lambda r: (order[r.scope], -r.spent, r.name))
    return rows


def refusals_by_budget(*, period: str, start: datetime) -> dict[int, tuple[int, Decimal]]:
    """Return {budget id: (requests refused, USD they asked for)} in the day or month starting
    at `start`, from the counters (one grouped query; the ledger holds no refused request).

    A refusal is counted on the counter of the limit that refused it: a day's are on its day
    counters, a month's on its month counter and the day counters within it. Refusals by a
    lifetime (total) limit belong to no day or month; the admin and the dashboard show them.
    """
    periods = [BudgetPeriod.DAY] if period == BudgetPeriod.DAY else [BudgetPeriod.DAY,
                                                                    BudgetPeriod.MONTH]
    rows = (BudgetCounter.objects
            .filter(period__in=periods, period_start__gte=start,
                    period_start__lt=period_end(period, start), refused__gt=0)
            .values("budget_id").annotate(count=Sum("refused"), amount=Sum("refused_amount"))
            .order_by())
    return {r["budget_id"]: (r["count"], Decimal(r["amount"] or 0)) for r in rows}


def team_spend_summary(*, since: datetime, until: datetime | None = None) -> list[dict]:
    """Return per-team requests, spend, savings and cache hits from the hour of `since` to
    `until`, from the ledger's per-key day roll-ups."""
    return list(
        rollups_since(since, until, days=RollupGrain.DAY_BY_KEY).values("team_id", "team__name")
        .annotate(requests=_requests(), spent=Sum("cost"), saved=Sum("cost_saved"),
                  hits=_total("hits"), errors=_total("errors"),
                  prompt_tokens=Sum("prompt_tokens"), completion_tokens=Sum("completion_tokens"))
        .order_by("-spent")
    )


def _requests() -> Coalesce:
    """Ledger rows in a roll-up queryset: the sum of its rows' request counts."""
    return _total("request_count")


def _total(column: str) -> Coalesce:
    return Coalesce(Sum(column), 0)
