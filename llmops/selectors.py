"""Reads for tenants and API keys."""

from django.utils import timezone

from llmops.keys import DUMMY_HASH, split_key, verify_secret
from llmops.models import ApiKey


def api_key_from_bearer(*, raw_key: str) -> ApiKey | None:
    """Return the usable key matching `raw_key`, or None. One indexed query, constant-time check."""
    parts = split_key(raw_key)
    if parts is None:
        verify_secret("", DUMMY_HASH)
        return None
    prefix, secret = parts
    api_key = ApiKey.objects.select_related("team", "user").filter(prefix=prefix).first()
    if api_key is None:
        verify_secret(secret, DUMMY_HASH)
        return None
    if not verify_secret(secret, api_key.hashed_secret):
        return None
    now = timezone.now()
    if not api_key.is_usable(now):
        return None
    if api_key.last_used_at is None or (now - api_key.last_used_at).total_seconds() > 60:
        # At most one write per key per minute: enough to spot unused keys, cheap on hot paths.
        ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
    return api_key
