"""Celery tasks: write-behind stores and expiry of index entries (thin wrappers over services)."""

from celery import shared_task


@shared_task(name="semcache.store_entry", ignore_result=True)
def semcache_store_entry(payload: dict) -> None:
    """Store one answer (SEMCACHE_WRITE_BEHIND=celery): `payload` as built by semcache.gateway."""
    from semcache.services import cache_store_payload

    cache_store_payload(payload)


@shared_task(name="semcache.expire", ignore_result=True)
def semcache_expire() -> int:
    """Drop expired entries from namespace sets and indexes (schedule it every minute)."""
    from semcache.services import cache_expire

    return cache_expire()
