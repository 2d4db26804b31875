"""Celery tasks of stored responses (thin wrappers over services)."""

from celery import shared_task


@shared_task(name="llmops.responses.purge_expired", ignore_result=True)
def stored_responses_purge() -> int:
    """Delete expired stored responses (scheduled by CELERY_BEAT_SCHEDULE)."""
    from llmops.responses.services import stored_responses_purge as purge

    return purge()
