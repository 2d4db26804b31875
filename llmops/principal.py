"""Who is calling: an API key resolved to its user, team (tenant) and tier.

Every room reads it (budgets charge it, the cache scopes by its team), so it lives apart from the
gateway's request context, which only budgets' callers know.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key, its user and team (tenant), and the key's tier."""

    api_key_id: int
    key_prefix: str
    user_id: int
    team_id: int
    team_name: str
    tier: str
