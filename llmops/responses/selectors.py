"""Reads of stored responses: always within the caller's team, never an expired one."""

from django.utils import timezone

from llmops.responses.models import StoredResponse


def stored_response_get(*, team_id: int, response_id: str) -> StoredResponse | None:
    """Return the team's unexpired stored response `response_id`, or None (another team's id
    is as unknown as one that never existed)."""
    return (StoredResponse.objects
            .filter(pk=response_id, team_id=team_id, expires_at__gt=timezone.now())
            .first())
