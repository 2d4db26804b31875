"""Writes for tenants and API keys."""

from dataclasses import dataclass
from datetime import datetime

from django.contrib.auth import get_user_model
from django.db import transaction

from llmops.keys import generate_key
from llmops.models import ApiKey, ApiKeyTier, Team


@dataclass(frozen=True)
class IssuedKey:
    """A freshly created key: `key` is the only time the full secret exists outside the client."""

    api_key: ApiKey
    key: str


def team_get_or_create(*, name: str) -> Team:
    """Return the team called `name`, creating it when missing."""
    team, _ = Team.objects.get_or_create(name=name)
    return team


@transaction.atomic
def api_key_create(
    *,
    team_name: str,
    username: str,
    tier: str = ApiKeyTier.STANDARD,
    name: str = "",
    expires_at: datetime | None = None,
) -> IssuedKey:
    """Create a key for `username` in `team_name` (creating both when missing) and return it."""
    team = team_get_or_create(name=team_name)
    user, _ = get_user_model().objects.get_or_create(username=username)
    return api_key_issue(team=team, user=user, tier=tier, name=name, expires_at=expires_at)


def api_key_issue(*, team: Team, user, tier: str, name: str = "", expires_at=None) -> IssuedKey:
    """Create a key for an existing team and user and return it with its full secret."""
    full_key, prefix, hashed = generate_key()
    api_key = ApiKey(
        team=team,
        user=user,
        tier=tier,
        name=name,
        prefix=prefix,
        hashed_secret=hashed,
        expires_at=expires_at,
    )
    api_key.full_clean()
    api_key.save()
    return IssuedKey(api_key=api_key, key=full_key)


def api_key_revoke(*, api_key: ApiKey) -> None:
    """Deactivate a key; the next request made with it is refused."""
    ApiKey.objects.filter(pk=api_key.pk).update(is_active=False)
