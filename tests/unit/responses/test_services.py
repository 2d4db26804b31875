"""Stored responses: kept per team, gone for everyone else, purged when expired."""

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from llmops.models import Team
from llmops.responses.models import StoredResponse
from llmops.responses.selectors import stored_response_get
from llmops.responses.services import (
    stored_response_delete,
    stored_response_save,
    stored_responses_purge,
)
from llmops.responses.tasks import stored_responses_purge as purge_task

pytestmark = pytest.mark.django_db


@pytest.fixture
def teams():
    return Team.objects.create(name="resp-a"), Team.objects.create(name="resp-b")


def save(team, response_id="resp_1"):
    return stored_response_save(response_id=response_id, team_id=team.pk, request_id="r",
                                body={"id": response_id}, conversation=[{"role": "user",
                                                                        "content": "hi"}])


class TestStoredResponses:
    def test_kept_for_the_ttl(self, teams, settings):
        settings.RESPONSES_STORE_TTL_DAYS = 2
        stored = save(teams[0])
        assert stored.expires_at - stored.created_at == timedelta(days=2)
        assert stored_response_get(team_id=teams[0].pk, response_id="resp_1") == stored

    def test_another_team_sees_and_deletes_nothing(self, teams):
        save(teams[0])
        assert stored_response_get(team_id=teams[1].pk, response_id="resp_1") is None
        assert stored_response_delete(team_id=teams[1].pk, response_id="resp_1") is False
        assert stored_response_delete(team_id=teams[0].pk, response_id="resp_1") is True
        assert not StoredResponse.objects.exists()

    def test_expired_is_gone_and_purged(self, teams):
        save(teams[0], "resp_old")
        save(teams[0], "resp_new")
        StoredResponse.objects.filter(pk="resp_old").update(
            expires_at=timezone.now() - timedelta(seconds=1))
        assert stored_response_get(team_id=teams[0].pk, response_id="resp_old") is None
        assert stored_responses_purge() == 1
        assert list(StoredResponse.objects.values_list("pk", flat=True)) == ["resp_new"]

    def test_task_and_command_purge(self, teams, capsys):
        for name in ("resp_a", "resp_b"):
            save(teams[0], name)
        StoredResponse.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
        assert purge_task() == 2
        save(teams[0], "resp_c")
        StoredResponse.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
        call_command("purge_responses", "--json")
        assert capsys.readouterr().out.strip() == '{"deleted": 1}'
