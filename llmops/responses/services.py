"""Writes of stored responses: keep one, delete one, purge the expired."""

from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from llmops.responses.models import StoredResponse


def stored_response_save(*, response_id: str, team_id: int, request_id: str, body: dict,
                         conversation: list[dict]) -> StoredResponse:
    """Keep a response for RESPONSES_STORE_TTL_DAYS."""
    now = timezone.now()
    return StoredResponse.objects.create(
        id=response_id, team_id=team_id, request_id=request_id[:128], body=body,
        conversation=conversation, created_at=now,
        expires_at=now + timedelta(days=settings.RESPONSES_STORE_TTL_DAYS),
    )


def stored_response_delete(*, team_id: int, response_id: str) -> bool:
    """Delete the team's stored response; return whether there was one."""
    deleted, _ = StoredResponse.objects.filter(pk=response_id, team_id=team_id).delete()
    return deleted > 0


def stored_responses_purge(*, now: datetime | None = None) -> int:
    """Delete every expired stored response; return how many."""
    deleted, _ = StoredResponse.objects.filter(expires_at__lte=now or timezone.now()).delete()
    return deleted
