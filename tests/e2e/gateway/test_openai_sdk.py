"""End to end: the official openai SDK against a live gateway serving simulated models."""

import httpx
import openai
import pytest

from budgets.models import UsageRecord
from tests.toolkit.sdk import read_stream


def test_non_streamed_completion(openai_client):
    completion = openai_client.chat.completions.create(
        model="simulated-standard",
        messages=[{"role": "system", "content": "Be brief."},
                  {"role": "user", "content": "What is the capital of France?"}],
        max_tokens=16,
    )
    assert completion.object == "chat.completion"
    assert completion.model == "simulated-standard"
    assert completion.choices[0].message.role == "assistant"
    assert completion.choices[0].message.content.startswith("[simulated]")
    usage = completion.usage
    assert usage.prompt_tokens > 0 and 0 < usage.completion_tokens <= 16
    extra = usage.model_extra
    assert extra["cost"] > 0
    assert extra["llmops"]["model"] == "simulated-standard"
    assert extra["llmops"]["routing_reason"] == "explicit"
    record = UsageRecord.objects.get(request_id=extra["llmops"]["request_id"])
    assert record.status == "ok" and record.completion_tokens == usage.completion_tokens
    assert float(record.cost) == pytest.approx(extra["cost"])


def test_response_headers_describe_the_call(openai_client):
    raw = openai_client.chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": "hello"}])
    assert raw.headers["x-llmops-model"].startswith("simulated-")
    assert raw.headers["x-llmops-cache"] in {"miss", "disabled"}
    assert float(raw.headers["x-llmops-cost"]) > 0
    assert raw.headers["x-request-id"]


def test_streamed_completion_with_usage(openai_client):
    stream = openai_client.chat.completions.create(
        model="simulated-efficient",
        messages=[{"role": "user", "content": "Tell me a short story"}],
        stream=True, stream_options={"include_usage": True},
    )
    read = read_stream(stream)
    text, usage, finish = read.text, read.usage, read.finish_reason
    assert text.startswith("[simulated]")
    assert finish == "stop"
    assert usage is not None and usage.completion_tokens > 0
    record = UsageRecord.objects.get(request_id=usage.model_extra["llmops"]["request_id"])
    assert record.stream and record.status == "ok"
    assert record.completion_tokens == usage.completion_tokens
    assert float(record.cost) == pytest.approx(usage.model_extra["cost"])


def test_models_list(openai_client, simulated_profiles):
    ids = [m.id for m in openai_client.models.list()]
    assert "auto" in ids
    assert set(simulated_profiles) <= set(ids)


def test_invalid_key_is_401(live_gateway, simulated_profiles):
    client = openai.OpenAI(base_url=live_gateway.api_base, api_key="llmops-nope.wrong",
                           max_retries=0)
    with pytest.raises(openai.AuthenticationError) as excinfo:
        client.chat.completions.create(model="auto",
                                       messages=[{"role": "user", "content": "hi"}])
    assert excinfo.value.status_code == 401
    assert excinfo.value.body["type"] == "authentication_error"
    assert UsageRecord.objects.count() == 0


def test_body_the_sdk_refuses_is_a_400_error_object(live_gateway, api_key, simulated_profiles):
    # The SDK's types would not let us send `messages` as a string; send it raw.
    response = httpx.post(
        f"{live_gateway.api_base}/chat/completions",
        headers={"Authorization": f"Bearer {api_key.key}"},
        json={"model": "auto", "messages": "hello"},
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == "messages"
    assert set(error) >= {"message", "type", "code", "param"}


def test_streaming_clients_that_accept_only_event_streams_are_served(live_gateway, api_key,
                                                                     simulated_profiles):
    response = httpx.post(
        f"{live_gateway.api_base}/chat/completions",
        headers={"Authorization": f"Bearer {api_key.key}", "Accept": "text/event-stream"},
        json={"model": "simulated-standard", "stream": True,
              "messages": [{"role": "user", "content": "hi"}]},
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.text.rstrip().endswith("data: [DONE]")
