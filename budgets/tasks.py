"""Celery tasks for budgets: thin wrappers around the services of the same name."""

from celery import shared_task
from django.conf import settings


@shared_task(bind=True, max_retries=None, acks_late=True)
def budget_alert_send(self, alert_id: int) -> None:
    """Deliver one budget alert, retrying with exponential backoff when delivery fails."""
    from budgets.services import budget_alert_deliver

    try:
        budget_alert_deliver(alert_id=alert_id)
    except Exception as exc:
        # Run eagerly (no broker), a retry would block the settling request right away; the
        # failure stays recorded on the alert (admin) instead.
        if self.request.is_eager or self.request.retries >= settings.BUDGET_ALERT_MAX_RETRIES:
            raise
        raise self.retry(exc=exc, countdown=min(2 ** self.request.retries * 5, 600)) from exc


@shared_task
def reservations_release_stale() -> int:
    """Release reservations whose request died without settling (run by Celery beat)."""
    from budgets.services import reservations_release_stale as release

    return release()


@shared_task
def alerts_redeliver() -> int:
    """Queue again the alerts that were never delivered (run by Celery beat)."""
    from budgets.services import alerts_redeliver as redeliver

    return redeliver()


@shared_task
def ledger_retention_apply() -> int:
    """Archive and delete raw ledger rows past LEDGER_RETENTION_DAYS (run by Celery beat)."""
    from budgets.services import ledger_retention_apply as apply

    return apply()


@shared_task
def rollups_fold() -> int:
    """Fold the UTC days that are over into the coarse roll-ups (run by Celery beat)."""
    from budgets.rollups import rollups_fold as fold

    return fold()


@shared_task
def ledger_partitions_ensure() -> list[str]:
    """Create the ledger's monthly partitions ahead on PostgreSQL (run by Celery beat)."""
    from budgets.partitions import ledger_partitions_ensure as ensure

    return ensure(ahead=settings.LEDGER_PARTITIONS_AHEAD)
