"""Reads for tenants and API keys."""

from functools import cache

from django.db import connection
from django.utils import timezone

from llmops import raw_rows
from llmops.keys import DUMMY_HASH, split_key, verify_secret
from llmops.models import ApiKey


def api_key_from_bearer(*, raw_key: str) -> ApiKey | None:
    """Return the usable key matching `raw_key`, or None. One indexed query (the key with its
    team and user, so that a deactivated user is refused without another), constant-time check.

    Nothing is cached between requests: revoking a key, expiring it or deactivating its user
    takes effect on the next request."""
    parts = split_key(raw_key)
    if parts is None:
        verify_secret("", DUMMY_HASH)
        return None
    prefix, secret = parts
    api_key = _api_key_with_team_and_user(prefix)
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


_KEY_RELATIONS = ("team", "user")
_KEY_MODELS = [ApiKey] + [ApiKey._meta.get_field(name).related_model for name in _KEY_RELATIONS]


@cache
def _api_key_sql(vendor: str) -> str:
    # `ApiKey.objects.select_related("team", "user").filter(prefix=...)`, built once per
    # process (llmops/raw_rows.py says why).
    qn = connection.ops.quote_name
    aliases = ["k", "t", "u"]
    selected = [c for model, alias in zip(_KEY_MODELS, aliases, strict=True)
                for c in raw_rows.columns(model, alias)]
    joins = " ".join(
        f"JOIN {raw_rows.table(model)} {alias} ON {alias}.{qn(model._meta.pk.column)} = "
        f"k.{qn(ApiKey._meta.get_field(name).column)}"
        for name, model, alias in zip(_KEY_RELATIONS, _KEY_MODELS[1:], aliases[1:], strict=True))
    return (f"SELECT {', '.join(selected)} FROM {raw_rows.table(ApiKey)} k {joins} "
            f"WHERE k.{qn(ApiKey._meta.get_field('prefix').column)} = %s")


def _api_key_with_team_and_user(prefix: str) -> ApiKey | None:
    with connection.cursor() as cursor:
        cursor.execute(_api_key_sql(connection.vendor), [prefix])
        row = cursor.fetchone()
    if row is None:
        return None
    instances, offset = [], 0
    for model in _KEY_MODELS:
        end = offset + raw_rows.width(model)
        instances.append(raw_rows.from_row(model, row[offset:end]))
        offset = end
    api_key = instances[0]
    for name, related in zip(_KEY_RELATIONS, instances[1:], strict=True):
        ApiKey._meta.get_field(name).set_cached_value(api_key, related)
    return api_key
