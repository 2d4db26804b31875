"""Reconciliation: rebuild the budget counters from the ledger and open reservations."""

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from budgets import selectors
from budgets.models import BudgetCounter
from budgets.money import ZERO, ledger_usd
from budgets.services.archive import ledger_archived_before


@dataclass
class Drift:
    """A counter whose stored amounts differ from what the ledger and reservations say."""

    counter_id: int
    budget: str
    period: str
    period_start: datetime
    stored_spent: Decimal
    ledger_spent: Decimal
    stored_reserved: Decimal
    held_reserved: Decimal

    def __str__(self) -> str:
        return (f"{self.budget} {self.period} {self.period_start:%Y-%m-%d}: spent "
                f"{self.stored_spent} → {self.ledger_spent}, reserved {self.stored_reserved} → "
                f"{self.held_reserved}")

    def as_dict(self) -> dict:
        return {
            "counter_id": self.counter_id, "budget": self.budget, "period": self.period,
            "period_start": self.period_start.isoformat(),
            "stored_spent": str(self.stored_spent), "ledger_spent": str(self.ledger_spent),
            "stored_reserved": str(self.stored_reserved),
            "held_reserved": str(self.held_reserved),
        }


def budget_counters_reconcile(*, fix: bool = True, tolerance: Decimal = Decimal("0.000001"),
                              budget_ids: list[int] | None = None) -> list[Drift]:
    """Rebuild every counter from the ledger (spent) and open reservations (reserved); return the
    drifts found. Each counter is rebuilt under its row lock, so concurrent settlements, which
    add to the locked value, stay correct.

    Counters of periods that began before an archive's cut (`counters_archived`) are left
    alone: part of their raw rows is in an archive file, not in the ledger."""
    drifts = []
    counters = _counters(budget_ids).exclude(pk__in=counters_archived(budget_ids=budget_ids))
    for pk in counters.values_list("pk", flat=True):
        with transaction.atomic():
            counter = counters.select_for_update(of=("self",)).get(pk=pk)
            spent = ledger_usd(selectors.ledger_spent(
                budget=counter.budget, period=counter.period, start=counter.period_start))
            held = selectors.reservations_by_counter().get(counter.pk, ZERO)
            if (abs(spent - counter.spent) > tolerance
                    or abs(held - counter.reserved) > tolerance):
                drifts.append(Drift(
                    counter_id=counter.pk, budget=str(counter.budget), period=counter.period,
                    period_start=counter.period_start, stored_spent=counter.spent,
                    ledger_spent=spent, stored_reserved=counter.reserved, held_reserved=held))
                if fix:
                    BudgetCounter.objects.filter(pk=pk).update(spent=spent, reserved=held,
                                                               updated_at=timezone.now())
    return drifts


def _counters(budget_ids: list[int] | None):
    counters = BudgetCounter.objects.select_related("budget__api_key", "budget__user",
                                                    "budget__team").order_by("pk")
    if budget_ids is not None:
        counters = counters.filter(budget_id__in=budget_ids)
    return counters


def counters_archived(*, budget_ids: list[int] | None = None) -> list[int]:
    """Return the ids of the counters whose period began before the latest archive's cut
    (lifetime counters included, once anything was archived): the raw ledger no longer holds
    all of their rows, so they cannot be reconciled from it."""
    before = ledger_archived_before()
    if before is None:
        return []
    return list(_counters(budget_ids).filter(period_start__lt=before)
                .values_list("pk", flat=True))

