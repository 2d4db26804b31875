"""Helpers for budget tests: a Principal for a key, an admit → settle shortcut, a ledger entry,
a budget's counter."""

from datetime import datetime
from decimal import Decimal

from django.utils import timezone

from budgets.models import Budget, BudgetCounter
from budgets.periods import period_start
from budgets.services import UsageEntry, request_admit, request_settle
from llmops.principal import Principal


def principal_of(api_key) -> Principal:
    """Return the Principal the gateway builds for `api_key`."""
    return Principal(api_key_id=api_key.pk, key_prefix=api_key.prefix, user_id=api_key.user_id,
                     team_id=api_key.team_id, team_name=api_key.team.name, tier=api_key.tier)


def spend(principal: Principal, request_id: str, reserve: str, cost: str, **kwargs):
    """Admit with `reserve`, settle at `cost`; return the ledger row."""
    admission = request_admit(principal=principal, request_id=request_id,
                              estimated_cost=Decimal(reserve), **kwargs)
    return request_settle(admission=admission, entry=UsageEntry(
        request_id=request_id, principal=principal, requested_model="m", served_model="m",
        estimated_cost=Decimal(reserve), cost=Decimal(cost)))


def entry(principal: Principal, request_id: str, cost: str = "0", **kwargs) -> UsageEntry:
    """Return the ledger entry of a request to model "m" that cost `cost`."""
    return UsageEntry(request_id=request_id, principal=principal, requested_model="m",
                      served_model="m", cost=Decimal(cost), **kwargs)


def counter(budget: Budget, period: str = "day", start: datetime | None = None) -> BudgetCounter:
    """Return the budget's counter for a period: the current one, or the one starting at `start`."""
    start = start or period_start(period, timezone.now())
    return BudgetCounter.objects.get(budget=budget, period=period, period_start=start)
