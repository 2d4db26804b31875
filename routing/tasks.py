"""Celery tasks for routing: thin wrappers around the services of the same name."""

from celery import shared_task


@shared_task
def profiles_refresh_observed() -> int:
    """Recompute observed latency and error rates from the ledger; return profiles updated."""
    from routing.services import profiles_refresh_observed as refresh

    return len(refresh())
