"""The pipeline against a real provider server on 127.0.0.1: settlement in every outcome."""

import json

import httpx
import openai
import pytest

from budgets.models import UsageRecord
from tests.toolkit.fakeprovider import Behavior


@pytest.fixture(autouse=True)
def _fast_retries(settings):
    settings.ROUTING_BACKOFF_BASE_SECONDS = 0.01
    settings.ROUTING_BACKOFF_MAX_SECONDS = 0.05
    settings.ROUTING_COOLDOWN_SECONDS = 0.5


@pytest.fixture
def client(live_gateway, api_key):
    return openai.OpenAI(base_url=live_gateway.api_base, api_key=api_key.key, max_retries=0,
                         timeout=30)


def _post_stream(live_gateway, api_key, body: dict) -> httpx.Response:
    return httpx.post(f"{live_gateway.api_base}/chat/completions", json={**body, "stream": True},
                      headers={"Authorization": f"Bearer {api_key.key}"}, timeout=30)


def test_streamed_call_is_charged_exactly_the_final_usage_chunk(client, fake_profile,
                                                                 fake_provider):
    fake_profile("m-stream", input_price_per_token="0.000003", output_price_per_token="0.000011")
    fake_provider.enqueue(Behavior(words=12, cached_tokens=2))
    usage = None
    for chunk in client.chat.completions.create(
            model="m-stream", messages=[{"role": "user", "content": "count to twelve"}],
            stream=True, stream_options={"include_usage": True}):
        usage = chunk.usage or usage
    record = UsageRecord.objects.get(request_id=usage.model_extra["llmops"]["request_id"])
    assert (record.prompt_tokens, record.completion_tokens, record.cached_tokens) == (
        usage.prompt_tokens, usage.completion_tokens, 2)
    expected = ((usage.prompt_tokens - 2) * 3 + 2 * 3 + usage.completion_tokens * 11) / 1e6
    assert float(record.cost) == pytest.approx(expected)
    assert record.status == "ok" and record.stream


def test_stream_cut_by_the_provider_ends_with_an_error_event(live_gateway, api_key,
                                                             fake_profile, fake_provider):
    fake_profile("m-cut", upstream="fake-words-10-cut-3")
    response = _post_stream(live_gateway, api_key, {
        "model": "m-cut", "messages": [{"role": "user", "content": "hello"}]})
    assert response.status_code == 200
    events = [line[6:] for line in response.text.splitlines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    error = json.loads(events[-2])["error"]
    assert error["type"] == "api_error"
    record = UsageRecord.objects.get(request_id=response.headers["x-request-id"])
    assert record.status == "upstream_error" and record.error_kind == "stream_interrupted"
    assert record.completion_tokens >= 1


def test_failure_before_first_byte_falls_back_and_one_row_names_both(client, fake_profile):
    fake_profile("m-backup", upstream="fake-ok")
    fake_profile("m-broken", upstream="fake-error-500", fallbacks=["m-backup"])
    completion = client.chat.completions.create(
        model="m-broken", messages=[{"role": "user", "content": "hi"}])
    assert completion.model == "m-backup"
    extra = completion.usage.model_extra["llmops"]
    assert extra["routing_reason"] == "fallback"
    record = UsageRecord.objects.get()
    assert record.served_model == "m-backup"
    assert record.attempted_models[0] == "m-broken" and record.attempted_models[-1] == "m-backup"
    assert record.status == "ok"


def test_upstream_error_without_fallback_is_an_error_object_and_a_ledger_row(client,
                                                                             fake_profile):
    fake_profile("m-down", upstream="fake-error-500")
    with pytest.raises(openai.APIStatusError) as excinfo:
        client.chat.completions.create(model="m-down",
                                       messages=[{"role": "user", "content": "hi"}])
    assert excinfo.value.status_code == 502
    record = UsageRecord.objects.get()
    assert record.status == "upstream_error" and record.error_kind == "server_error"
    assert record.cost == 0 and record.http_status == 502


def test_provider_rate_limit_surfaces_as_429_with_retry_after(live_gateway, api_key,
                                                              fake_profile, settings):
    settings.ROUTING_MAX_RETRIES = 0
    fake_profile("m-limited", upstream="fake-error-429-ra-7")
    response = httpx.post(f"{live_gateway.api_base}/chat/completions",
                          json={"model": "m-limited",
                                "messages": [{"role": "user", "content": "hi"}]},
                          headers={"Authorization": f"Bearer {api_key.key}"}, timeout=30)
    assert response.status_code == 429
    assert response.headers["retry-after"] == "7"
    assert response.json()["error"]["type"] == "rate_limit_error"


def test_answer_without_usage_is_charged_from_counted_tokens(client, fake_profile):
    fake_profile("m-nousage", upstream="fake-nousage")
    completion = client.chat.completions.create(
        model="m-nousage", messages=[{"role": "user", "content": "hello there"}])
    record = UsageRecord.objects.get()
    assert record.completion_tokens > 0 and record.prompt_tokens > 0
    assert record.cost > 0
    assert completion.usage.completion_tokens == record.completion_tokens


def test_provider_key_is_sent_upstream_and_never_echoed(client, fake_profile, fake_provider,
                                                        monkeypatch):
    monkeypatch.setenv("FAKE_PROVIDER_KEY", "sk-secret-provider-key-123")
    fake_profile("m-keyed", upstream="fake-error-401", api_key_env="FAKE_PROVIDER_KEY")
    with pytest.raises(openai.APIStatusError) as excinfo:
        client.chat.completions.create(model="m-keyed",
                                       messages=[{"role": "user", "content": "hi"}])
    assert "sk-secret-provider-key-123" not in excinfo.value.response.text
    assert fake_provider.last_request.sent_key("sk-secret-provider-key-123")
