"""A response kept for `GET /v1/responses/{id}` and for `previous_response_id` follow-ups."""

from django.db import models
from django.utils import timezone


class StoredResponse(models.Model):
    """One stored response of one team: the object as answered, and the conversation so far.

    `conversation` is the chat messages a follow-up continues from (every earlier turn, this
    request's input and this answer; never the request's `instructions`, which a follow-up
    does not inherit, as in OpenAI's API). Rows expire (`expires_at`) and are purged.
    """

    id = models.CharField(primary_key=True, max_length=64)
    team = models.ForeignKey("llmops.Team", on_delete=models.CASCADE,
                             related_name="stored_responses")
    request_id = models.CharField(max_length=128, blank=True)
    body = models.JSONField(help_text="The response object as it was answered.")
    conversation = models.JSONField(help_text="Chat messages a follow-up continues from.")
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    expires_at = models.DateTimeField(db_index=True)

    class Meta:
        indexes = [models.Index(fields=["team", "created_at"], name="stored_resp_team_created")]

    def __str__(self) -> str:
        return self.id
