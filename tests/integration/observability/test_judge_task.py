"""The sampled judge: a real HTTP call to the judge profile, a stored verdict, published flags."""

import asyncio
import json
import logging

import pytest
from prometheus_client import REGISTRY

from llmops.models import ResponseFeedback
from llmops.observability import judge
from llmops.observability.tasks import judge_response
from tests.toolkit.fakeprovider import Behavior

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def judge_profile(fake_profile, settings):
    profile = fake_profile("judge-model", upstream="judge-upstream")
    settings.QUALITY_JUDGE_MODEL = profile.name
    return profile


def test_the_judge_scores_flags_and_stores_with_the_ledger_row(
        judge_profile, fake_provider, make_api_key, make_usage, caplog):
    record = make_usage(make_api_key(), served_model="m-judged")
    fake_provider.enqueue(Behavior(text=json.dumps({
        "score": 3, "task_type": "math", "unsupported_claims": ["2+2=5"],
        "rationale": "wrong sum"})))
    labels = {"model": "m-judged", "task_type": "math"}

    with caplog.at_level(logging.INFO):
        judge.judge_enqueue(request_id=record.request_id, team_id=record.team_id,
                            messages=[{"role": "user", "content": "2+2?"}], answer="5")
    # The texts are in the task message, not in the worker's logs.
    assert "2+2?" not in caplog.text

    feedback = ResponseFeedback.objects.get(usage_record=record, source="judge")
    assert feedback.score == 3 and feedback.hallucination and feedback.correct is False
    assert feedback.details["unsupported_claims"] == ["2+2=5"]
    assert feedback.prompt == [{"role": "user", "content": "2+2?"}]
    assert REGISTRY.get_sample_value("llm_hallucination_flags_total", labels) == 1
    sent = fake_provider.last_request.body
    assert sent["model"] == "judge-upstream" and sent["temperature"] == 0
    assert "<answer>\n5\n" in sent["messages"][1]["content"]


def test_an_unusable_reply_stores_nothing(judge_profile, fake_provider, make_api_key,
                                          make_usage):
    record = make_usage(make_api_key())
    fake_provider.enqueue(Behavior(text="I think it is fine."))
    judge_response.delay(record.request_id, [{"role": "user", "content": "hi"}], "hello",
                         record.team_id).get()
    assert not ResponseFeedback.objects.exists()


def test_sampling_follows_the_rate(judge_profile, settings, monkeypatch):
    queued = []
    monkeypatch.setattr(judge_response, "apply_async",
                        lambda args, **options: queued.append(args))
    settings.QUALITY_JUDGE_SAMPLE_RATE = 0.0
    assert not judge.judge_sample_maybe(request_id="r1", team_id=1, messages=[], answer="a")
    settings.QUALITY_JUDGE_SAMPLE_RATE = 1.0
    assert judge.judge_sample_maybe(request_id="r2", team_id=1, messages=[], answer="a")
    assert queued == [("r2", [], "a", 1)]


async def test_the_async_sampler_hands_off_without_blocking(judge_profile, settings,
                                                            monkeypatch):
    queued = []
    monkeypatch.setattr(judge_response, "apply_async",
                        lambda args, **options: queued.append(args))
    settings.QUALITY_JUDGE_SAMPLE_RATE = 1.0
    assert await judge.judge_sample_maybe_async(request_id="r3", team_id=1, messages=[],
                                                answer="a")
    await asyncio.gather(*judge._pending)
    assert queued == [("r3", [], "a", 1)]
