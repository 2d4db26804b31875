"""The sweep: gateway processes say they are alive; reservations of dead requests are charged."""

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from budgets.models import (
    BudgetCounter,
    BudgetReservation,
    ReservationHolder,
    UsageRecord,
    UsageStatus,
)
from budgets.money import ZERO
from budgets.rollups import rollups_add
from budgets.services.alerts import alerts_create, alerts_due
from budgets.services.counters import counters_write

logger = logging.getLogger("llmops.budgets")

def reservation_holder_heartbeat(*, holder_id: str, hostname: str = "", pid: int = 0,
                                 now: datetime | None = None) -> None:
    """Say that gateway process `holder_id` is alive (one upsert): while it keeps saying so,
    the sweep leaves its reservations alone, however long its requests run."""
    now = now or timezone.now()
    ReservationHolder.objects.bulk_create(
        [ReservationHolder(id=holder_id, hostname=hostname[:255], pid=pid, started_at=now,
                           seen_at=now)],
        update_conflicts=True, unique_fields=["id"], update_fields=["seen_at"],
    )


def reservations_stale(*, older_than_seconds: int | None = None,
                       holder_timeout_seconds: float | None = None,
                       now: datetime | None = None):
    """Return the reservations whose request can no longer settle them: those whose holder
    process stopped heartbeating `holder_timeout_seconds` ago, and those made outside a gateway
    process (no holder) older than `older_than_seconds`."""
    now = now or timezone.now()
    if older_than_seconds is None:
        older_than_seconds = settings.BUDGET_RESERVATION_TIMEOUT_SECONDS
    if holder_timeout_seconds is None:
        holder_timeout_seconds = settings.BUDGET_HOLDER_TIMEOUT_SECONDS
    holder_cutoff = now - timedelta(seconds=holder_timeout_seconds)
    alive = ReservationHolder.objects.filter(seen_at__gte=holder_cutoff).values("pk")
    return BudgetReservation.objects.filter(
        Q(holder="", created_at__lt=now - timedelta(seconds=older_than_seconds))
        | (~Q(holder="") & Q(created_at__lt=holder_cutoff) & ~Q(holder__in=alive)))


def reservations_release_stale(*, older_than_seconds: int | None = None,
                               holder_timeout_seconds: float | None = None,
                               now: datetime | None = None, batch_size: int = 500) -> int:
    """Release the reservations whose request died without settling (`reservations_stale`);
    return how many. Run by every gateway process (llmops.gateway.holder) and by Celery beat.

    Each dead request is charged its reservation, the most it could have cost: whether its
    call reached the provider, and what the provider billed, died with the process, and the
    ledger must never under-state a bill. If the request settles after all, the real cost
    replaces that charge. Each is released in its own short transaction, so the sweep never
    holds counters long.
    """
    now = now or timezone.now()
    stale = reservations_stale(older_than_seconds=older_than_seconds,
                               holder_timeout_seconds=holder_timeout_seconds, now=now)
    released = 0
    while True:
        ids = list(stale.order_by("created_at").values_list("pk", flat=True)[:batch_size])
        for pk in ids:
            with transaction.atomic():
                reservation = BudgetReservation.objects.select_for_update().filter(pk=pk).first()
                if reservation is None:
                    continue  # settled meanwhile
                reservation.delete()
                record = _record_abandoned(reservation)
                counters = list(BudgetCounter.objects.select_for_update(of=("self",))
                                .select_related("budget")
                                .filter(pk__in=reservation.counter_ids).order_by("pk"))
                alerts = []
                for counter in counters:
                    counter.reserved = max(counter.reserved - reservation.amount, ZERO)
                    counter.spent += reservation.amount
                    counter.updated_at = now
                    alerts.extend(alerts_due(counter, now=now))
                counters_write(counters, ["reserved", "spent", "updated_at",
                                           "threshold_alerted_at", "limit_alerted_at"])
                alerts_create(alerts)
                if record is not None:
                    rollups_add(record)  # after the counters: the one lock order
                released += 1
                logger.warning("released stale reservation", extra={
                    "request_id": reservation.request_id, "amount": str(reservation.amount),
                    "holder": reservation.holder})
        if len(ids) < batch_size:
            break
    # Holders gone for a day have no reservations left to vouch for.
    ReservationHolder.objects.filter(seen_at__lt=now - timedelta(days=1)).delete()
    return released


ABANDONED = "abandoned"  # error_kind of the sweep's provisional row for a request that died


def _record_abandoned(reservation: BudgetReservation) -> UsageRecord | None:
    """Write the ledger row of a request that was admitted but never settled (its process died):
    every admitted request has exactly one row, charged the reservation (see
    `reservations_release_stale`). Return it, or None when the request had a row already."""
    record, created = UsageRecord.objects.get_or_create(
        request_id=reservation.request_id, team_id=reservation.team_id,
        defaults=dict(
            created_at=reservation.created_at, api_key_id=reservation.api_key_id,
            user_id=reservation.user_id,
            requested_model=reservation.requested_model, estimated_cost=reservation.amount,
            cost=reservation.amount, status=UsageStatus.GATEWAY_ERROR, error_kind=ABANDONED,
            http_status=500,
        ),
    )
    return record if created else None
