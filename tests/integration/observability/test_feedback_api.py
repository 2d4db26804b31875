"""POST /v1/feedback: a client's verdict is stored with the ledger row, published, and passed on."""

import sys
import types

import pytest
from prometheus_client import REGISTRY

from llmops.models import ResponseFeedback

pytestmark = pytest.mark.django_db(transaction=True)


def _post(client, key, body):
    return client.post("/v1/feedback", body, content_type="application/json",
                       HTTP_AUTHORIZATION=f"Bearer {key.key}")


@pytest.fixture
def cache_verdicts(monkeypatch):
    """Install a stand-in `semcache.gateway.cache_feedback` and return the verdicts it got."""
    received = []

    async def cache_feedback(*, team_id: int, request_id: str, correct: bool) -> bool:
        received.append((request_id, correct))
        return True

    module = types.ModuleType("semcache.gateway")
    module.cache_feedback = cache_feedback
    monkeypatch.setitem(sys.modules, "semcache.gateway", module)
    return received


def test_thumbs_down_is_stored_published_and_sent_to_the_cache(
        client, make_api_key, make_usage, cache_verdicts):
    key = make_api_key(team="acme")
    record = make_usage(key, served_model="m-fb", cache_status="hit_semantic")
    labels = {"model": "m-fb", "task_type": "code"}
    before = REGISTRY.get_sample_value("llm_response_quality_score_count", labels) or 0

    response = _post(client, key, {"request_id": record.request_id, "thumbs": "down",
                                   "task_type": "code", "comment": "wrong API"})

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["object"] == "feedback" and body["score"] == 0 and body["correct"] is False
    assert body["cache_updated"] is True
    assert cache_verdicts == [(record.request_id, False)]
    feedback = ResponseFeedback.objects.get(usage_record=record)
    assert (feedback.source, feedback.model, feedback.task_type) == ("user", "m-fb", "code")
    assert REGISTRY.get_sample_value("llm_response_quality_score_count", labels) == before + 1


def test_a_neutral_score_is_not_a_cache_verdict(client, make_api_key, make_usage,
                                                cache_verdicts):
    key = make_api_key()
    record = make_usage(key)
    response = _post(client, key, {"request_id": record.request_id, "score": 5})
    assert response.status_code == 201 and response.json()["correct"] is None
    assert cache_verdicts == []


def test_another_teams_request_is_not_found(client, make_api_key, make_usage):
    owner = make_api_key(team="acme", user="a")
    other = make_api_key(team="globex", user="b")
    record = make_usage(owner)
    response = _post(client, other, {"request_id": record.request_id, "score": 9})
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "request_not_found"
    assert not ResponseFeedback.objects.exists()


def test_one_rating_per_answer(client, make_api_key, make_usage):
    key = make_api_key()
    record = make_usage(key)
    assert _post(client, key, {"request_id": record.request_id, "score": 9}).status_code == 201
    again = _post(client, key, {"request_id": record.request_id, "thumbs": "up"})
    assert again.status_code == 409 and again.json()["error"]["code"] == "feedback_exists"


@pytest.mark.parametrize("body", [{"request_id": "x"}, {"request_id": "x", "score": 11},
                                  {"request_id": "x", "thumbs": "sideways"}])
def test_invalid_bodies_get_an_openai_error(client, make_api_key, body):
    response = _post(client, make_api_key(), body)
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"


def test_requires_an_api_key(client):
    response = client.post("/v1/feedback", {"request_id": "x", "score": 1},
                           content_type="application/json")
    assert response.status_code == 401
