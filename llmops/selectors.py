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
    if not api_key.is_usable(timezone.now()):
        return None
    return api_key
