"""Budget alerts: which a counter's new spend makes due, creating them once, delivering them."""

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from budgets.models import BudgetAlert, BudgetAlertKind, BudgetCounter
from budgets.money import format_usd
from budgets.selectors import PeriodLimit
from budgets.services.counters import counters_write

logger = logging.getLogger("llmops.budgets")


def alerts_due(counter: BudgetCounter, *, now: datetime) -> list[BudgetAlert]:
    """Return the alerts `counter`'s new spend triggers, marking them sent on the (locked) row.

    The row lock held by the caller makes the check-and-mark atomic: exactly one settlement per
    period sends each alert, however many run concurrently.
    """
    budget = counter.budget
    limit = budget.limit_for(counter.period)
    if not limit:
        return []
    due = []
    if counter.threshold_alerted_at is None and counter.spent >= limit * budget.alert_threshold:
        counter.threshold_alerted_at = now
        due.append(BudgetAlertKind.THRESHOLD)
    if counter.limit_alerted_at is None and counter.spent >= limit:
        counter.limit_alerted_at = now
        due.append(BudgetAlertKind.LIMIT)
    return [BudgetAlert(budget=budget, counter=counter, kind=kind, period=counter.period,
                        period_start=counter.period_start, spent=counter.spent, limit=limit,
                        created_at=now) for kind in due]


def alerts_create(alerts: list[BudgetAlert]) -> None:
    """Save `alerts` and queue their delivery once the transaction commits."""
    for alert in alerts:
        alert.save(force_insert=True)
        transaction.on_commit(lambda pk=alert.pk: _alert_enqueue(alert_id=pk))


def alerts_send_due(*, counter_ids: list[int], now: datetime) -> None:
    """Create the alerts the counters' spend now triggers; the check and the mark happen under
    the row locks (`alerts_due`), so concurrent settlements send each alert once."""
    with transaction.atomic():
        counters = list(BudgetCounter.objects.select_for_update(of=("self",))
                        .select_related("budget").filter(pk__in=counter_ids).order_by("pk"))
        alerts = [alert for counter in counters for alert in alerts_due(counter, now=now)]
        if alerts:
            counters_write(counters, ["threshold_alerted_at", "limit_alerted_at"])
            alerts_create(alerts)


def limit_alert_on_refusal(*, limit: PeriodLimit, counter: BudgetCounter,
                           now: datetime) -> None:
    """Claim and send the "limit reached" alert of the budget period that refused a request."""
    if counter.limit_alerted_at is not None:
        return  # already sent this period: refusals under load cost no extra write
    with transaction.atomic():
        claimed = BudgetCounter.objects.filter(pk=counter.pk, limit_alerted_at__isnull=True).update(
            limit_alerted_at=now)
        if claimed:
            alerts_create([BudgetAlert(
                budget=limit.budget, counter=counter, kind=BudgetAlertKind.LIMIT,
                period=counter.period, period_start=counter.period_start,
                spent=counter.spent, limit=limit.limit, created_at=now)])


def _alert_enqueue(*, alert_id: int) -> None:
    from budgets.tasks import budget_alert_send

    try:
        budget_alert_send.delay(alert_id)
    except Exception:  # a broker that is down must not fail a request; the alert row remains
        logger.exception("could not enqueue budget alert", extra={"alert_id": alert_id})


def alerts_redeliver(*, older_than_seconds: int = 60, now: datetime | None = None,
                     limit: int = 200) -> int:
    """Queue again the alerts that were never delivered (broker down, webhook failing), within
    the retry allowance; return how many were queued. Run by Celery beat."""
    now = now or timezone.now()
    due = (BudgetAlert.objects
           .filter(delivered_at__isnull=True, attempts__lt=settings.BUDGET_ALERT_MAX_RETRIES + 1,
                   created_at__lt=now - timedelta(seconds=older_than_seconds))
           .order_by("created_at").values_list("pk", flat=True)[:limit])
    queued = 0
    for alert_id in due:
        _alert_enqueue(alert_id=alert_id)
        queued += 1
    return queued


def budget_alert_deliver(*, alert_id: int) -> BudgetAlert:
    """Send one alert to its budget's webhook (JSON POST) and email; raise when either fails."""
    import httpx
    from django.core.mail import send_mail

    alert = BudgetAlert.objects.select_related("budget").get(pk=alert_id)
    if alert.delivered_at is not None:
        return alert
    budget = alert.budget
    payload = alert_payload(alert=alert)
    BudgetAlert.objects.filter(pk=alert.pk).update(attempts=alert.attempts + 1)
    try:
        if budget.notify_webhook_url:
            response = httpx.post(budget.notify_webhook_url, json=payload,
                                  timeout=settings.BUDGET_ALERT_WEBHOOK_TIMEOUT_SECONDS)
            response.raise_for_status()
        if budget.notify_email:
            send_mail(subject=f"[llmops] {payload['message']}", message=payload["message"],
                      from_email=settings.BUDGET_ALERT_FROM_EMAIL,
                      recipient_list=[budget.notify_email])
    except Exception as exc:
        BudgetAlert.objects.filter(pk=alert.pk).update(last_error=str(exc)[:1000])
        raise
    alert.delivered_at = timezone.now()
    BudgetAlert.objects.filter(pk=alert.pk).update(delivered_at=alert.delivered_at, last_error="")
    return alert


def alert_payload(*, alert: BudgetAlert) -> dict:
    """Return the JSON body an alert webhook receives."""
    budget = alert.budget
    what = ("reached its limit" if alert.kind == BudgetAlertKind.LIMIT
            else f"crossed {budget.alert_threshold:.0%} of its limit")
    return {
        "event": f"budget.{alert.kind}",
        "message": f"{budget} {what} for the {alert.period} starting "
                   f"{alert.period_start:%Y-%m-%d}: {format_usd(alert.spent, decimals=6)} of "
                   f"{format_usd(alert.limit, decimals=6)}.",
        "budget": {"id": budget.pk, "scope": budget.scope, "name": budget.target_label,
                   "action": budget.action},
        "period": alert.period,
        "period_start": alert.period_start.isoformat(),
        "spent": str(alert.spent),
        "limit": str(alert.limit),
        "threshold": str(budget.alert_threshold),
        "created_at": alert.created_at.isoformat(),
    }
