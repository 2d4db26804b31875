"""Budgets: create or change one (`budget_set`), and seed its counters from the ledger."""

from datetime import datetime
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from budgets import selectors
from budgets.models import Budget, BudgetCounter, BudgetScope
from budgets.money import ledger_usd
from budgets.periods import period_start
from llmops.principal import Principal


class _Keep:
    def __repr__(self) -> str:
        return "KEEP"


KEEP = _Keep()  # "leave this field as it is" for budget_set's optional arguments


@transaction.atomic
def budget_set(
    *,
    scope: str,
    api_key=None,
    user=None,
    team=None,
    daily_limit: Decimal | None | _Keep = KEEP,
    monthly_limit: Decimal | None | _Keep = KEEP,
    total_limit: Decimal | None | _Keep = KEEP,
    alert_threshold: Decimal | _Keep = KEEP,
    action: str | _Keep = KEEP,
    notify_webhook_url: str | _Keep = KEEP,
    notify_email: str | _Keep = KEEP,
    is_active: bool | _Keep = KEEP,
) -> Budget:
    """Create or update the budget of one scope; arguments left as KEEP keep their value.

    A key's defaults-driven budget becomes an explicit one. Counters of newly limited periods
    start from what the ledger already holds.
    """
    target = {"api_key": api_key, "user": user, "team": team}
    lookup = {"scope": scope}
    for name, value in target.items():
        lookup[name] = value
    budget = Budget.objects.select_for_update().filter(**lookup).first()
    if budget is None:
        budget = Budget(**lookup)
    changes = {
        "daily_limit": daily_limit, "monthly_limit": monthly_limit, "total_limit": total_limit,
        "alert_threshold": alert_threshold, "action": action,
        "notify_webhook_url": notify_webhook_url, "notify_email": notify_email,
        "is_active": is_active,
    }
    for name, value in changes.items():
        if value is not KEEP:
            setattr(budget, name, value)
    if budget.uses_defaults:
        for name, setting in (("daily_limit", "DEFAULT_DAILY_BUDGET"),
                              ("monthly_limit", "DEFAULT_MONTHLY_BUDGET")):
            if changes[name] is KEEP:
                setattr(budget, name, getattr(settings, setting, None))
        budget.uses_defaults = False
    budget.full_clean()
    budget.save()
    budget_counters_seed(budget=budget)
    return budget


def budget_counters_seed(*, budget: Budget, now: datetime | None = None) -> list[BudgetCounter]:
    """Create the counters of `budget`'s current periods that are missing, with the spend the
    ledger already holds for them, so a budget created mid-month starts from the truth."""
    now = now or timezone.now()
    created = []
    for period in budget.limits():
        start = period_start(period, now)
        spent = selectors.ledger_spent(budget=budget, period=period, start=start)
        counter, was_created = BudgetCounter.objects.get_or_create(
            budget=budget, period=period, period_start=start,
            defaults={"spent": ledger_usd(spent), "updated_at": now},
        )
        if was_created:
            created.append(counter)
    return created


def default_budget_for_key(*, principal: Principal, now: datetime) -> Budget:
    """Return the key's defaults-driven budget, creating it (and seeding it) on first use."""
    budget, created = Budget.objects.get_or_create(
        scope=BudgetScope.KEY, api_key_id=principal.api_key_id,
        defaults={"uses_defaults": True, "created_at": now},
    )
    if created:
        budget_counters_seed(budget=budget, now=now)
    return budget
