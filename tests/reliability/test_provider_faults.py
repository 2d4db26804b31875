"""Provider faults against a live gateway: a real HTTP fake provider misbehaves on cue.

For each fault: what the client gets (an answer via retry or fallback, or a clear error object),
exactly one ledger row for the admitted request, reservations released, counters equal to the
ledger (no drift), and the upstream-error metric counting the failures.
"""

import json
import uuid
from decimal import Decimal

import pytest

from budgets.models import UsageRecord
from tests.toolkit.assertions import assert_openai_error, metric_value
from tests.toolkit.fakeprovider import Behavior
from tests.toolkit.fixtures import assert_books_straight, scrape_metrics, unique_prompt

pytestmark = pytest.mark.usefixtures("no_semantic_cache", "team_budget")

OK = Behavior()


def _post(client, model: str, *, stream: bool = False, max_tokens: int = 32):
    request_id = uuid.uuid4().hex
    body = {"model": model, "messages": unique_prompt("fault test"), "max_tokens": max_tokens}
    if stream:
        body |= {"stream": True, "stream_options": {"include_usage": True}}
    response = client.post("/v1/chat/completions", json=body,
                           headers={"X-Request-ID": request_id})
    return request_id, response


def _record(request_id: str) -> UsageRecord:
    rows = list(UsageRecord.objects.filter(request_id=request_id))
    assert len(rows) == 1, f"expected exactly one ledger row, found {len(rows)}"
    return rows[0]


def _errors(model: str, kind: str) -> float:
    return metric_value(scrape_metrics(), "llm_upstream_errors_total", model=model, kind=kind)


def _sse_events(response) -> list:
    events = []
    for line in response.text.splitlines():
        if line.startswith("data: "):
            data = line[len("data: "):]
            events.append(data if data == "[DONE]" else json.loads(data))
    return events


# --- non-streamed ----------------------------------------------------------------------------

def test_500_then_success_is_retried_on_the_same_model(gateway_http, fault_profiles,
                                                       fake_provider):
    before = _errors("fault-alone", "server_error")
    fake_provider.enqueue(Behavior(status=500), OK)
    request_id, response = _post(gateway_http, "fault-alone")
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"]
    record = _record(request_id)
    assert record.status == "ok" and record.served_model == "fault-alone"
    assert record.attempted_models == ["fault-alone", "fault-alone"]
    assert record.cost > 0
    assert len(fake_provider.requests) == 2
    assert _errors("fault-alone", "server_error") == before + 1
    assert_books_straight()


def test_persistent_500_falls_back_to_the_next_model(gateway_http, fault_profiles,
                                                     fake_provider, settings):
    retries = settings.ROUTING_MAX_RETRIES
    fake_provider.enqueue(*[Behavior(status=500)] * (retries + 1), OK)
    request_id, response = _post(gateway_http, "fault-primary")
    assert response.status_code == 200, response.text
    assert response.headers["x-llmops-model"] == "fault-fallback"
    record = _record(request_id)
    assert record.served_model == "fault-fallback" and record.status == "ok"
    assert record.attempted_models == ["fault-primary"] * (retries + 1) + ["fault-fallback"]
    assert record.routing_reason == "fallback"
    sent = [r.body["model"] for r in fake_provider.requests]
    assert sent == ["upstream-primary"] * (retries + 1) + ["upstream-fallback"]
    assert_books_straight()


def test_500_everywhere_is_a_clear_502_with_one_ledger_row(gateway_http, fault_profiles,
                                                          fake_provider, settings):
    failed_before = metric_value(scrape_metrics(), "llm_requests_total", model="fault-primary",
                                 status="upstream_error")
    fake_provider.enqueue(*[Behavior(status=500)] * 10)
    request_id, response = _post(gateway_http, "fault-primary")
    error = assert_openai_error(response, 502, code="server_error")
    assert metric_value(scrape_metrics(), "llm_requests_total", model="fault-primary",
                        status="upstream_error") == failed_before + 1
    assert error["type"] == "api_error"
    assert "fake provider" not in error["message"] or "Model" in error["message"]
    record = _record(request_id)
    assert record.status == "upstream_error" and record.http_status == 502
    assert record.cost == 0
    assert_books_straight()


def test_429_with_retry_after_is_retried_then_served(gateway_http, fault_profiles, fake_provider):
    before = _errors("fault-alone", "rate_limited")
    fake_provider.enqueue(Behavior(status=429, retry_after="1"), OK)
    request_id, response = _post(gateway_http, "fault-alone")
    assert response.status_code == 200, response.text
    assert _record(request_id).status == "ok"
    assert _errors("fault-alone", "rate_limited") == before + 1
    assert_books_straight()


def test_429_everywhere_is_a_429_error_with_retry_after(gateway_http, fault_profiles,
                                                       fake_provider):
    fake_provider.enqueue(*[Behavior(status=429, retry_after="7")] * 10)
    request_id, response = _post(gateway_http, "fault-alone")
    error = assert_openai_error(response, 429, code="upstream_rate_limited")
    assert error["type"] == "rate_limit_error"
    assert int(response.headers["retry-after"]) >= 1
    record = _record(request_id)
    assert record.status == "upstream_error" and record.http_status == 429
    assert_books_straight()


def _refusing(profile, fake_provider) -> None:
    """Point `profile` at a bound port that refuses every connection."""
    from routing.selectors import invalidate_snapshot

    profile.base_url = fake_provider.refused_url
    profile.save()
    invalidate_snapshot()


def test_connection_refused_falls_back(gateway_http, fault_profiles, fake_provider):
    _refusing(fault_profiles["fault-primary"], fake_provider)
    before = _errors("fault-primary", "connection_error")
    request_id, response = _post(gateway_http, "fault-primary")
    assert response.status_code == 200, response.text
    record = _record(request_id)
    assert record.served_model == "fault-fallback"
    assert "fault-primary" in record.attempted_models
    assert _errors("fault-primary", "connection_error") > before
    assert_books_straight()


def test_connection_refused_without_fallback_is_502(gateway_http, fault_profiles, fake_provider):
    _refusing(fault_profiles["fault-alone"], fake_provider)
    request_id, response = _post(gateway_http, "fault-alone")
    assert_openai_error(response, 502, code="connection_error")
    assert _record(request_id).status == "upstream_error"
    assert fake_provider.requests == []
    assert_books_straight()


def test_timeout_before_first_byte_is_504(gateway_http, fault_profiles, fake_provider, settings):
    settings.PROVIDER_READ_TIMEOUT_SECONDS = 0.3
    fake_provider.enqueue(*[Behavior(delay_ms=3000)] * 5)
    request_id, response = _post(gateway_http, "fault-alone")
    error = assert_openai_error(response, 504, code="upstream_timeout")
    assert error["type"] == "api_error"
    record = _record(request_id)
    assert record.status == "timeout" and record.http_status == 504
    assert_books_straight()


def test_timeout_falls_back_when_a_fallback_exists(gateway_http, fault_profiles, fake_provider,
                                                   settings):
    settings.PROVIDER_READ_TIMEOUT_SECONDS = 0.3
    settings.ROUTING_MAX_RETRIES = 0
    fake_provider.enqueue(Behavior(delay_ms=3000), OK)
    request_id, response = _post(gateway_http, "fault-primary")
    assert response.status_code == 200, response.text
    assert _record(request_id).served_model == "fault-fallback"
    assert_books_straight()


def test_malformed_json_is_retried_then_served(gateway_http, fault_profiles, fake_provider):
    fake_provider.enqueue(Behavior(malformed=True), OK)
    request_id, response = _post(gateway_http, "fault-alone")
    assert response.status_code == 200, response.text
    assert _record(request_id).attempted_models == ["fault-alone", "fault-alone"]
    assert_books_straight()


@pytest.mark.parametrize("behavior", [Behavior(malformed=True), Behavior(missing_fields=True)],
                         ids=["malformed", "missing-fields"])
def test_malformed_json_everywhere_is_502(gateway_http, fault_profiles, fake_provider, behavior):
    fake_provider.enqueue(*[behavior] * 5)
    request_id, response = _post(gateway_http, "fault-alone")
    assert_openai_error(response, 502)
    assert _record(request_id).status == "upstream_error"
    assert_books_straight()


def test_dropped_connection_is_retried(gateway_http, fault_profiles, fake_provider):
    fake_provider.enqueue(Behavior(drop=True), OK)
    request_id, response = _post(gateway_http, "fault-alone")
    assert response.status_code == 200, response.text
    assert _record(request_id).status == "ok"
    assert_books_straight()


def test_200_without_usage_is_charged_from_local_token_counts(gateway_http, fault_profiles,
                                                              fake_provider):
    fake_provider.enqueue(Behavior(usage=False, words=12))
    request_id, response = _post(gateway_http, "fault-alone")
    assert response.status_code == 200, response.text
    usage = response.json()["usage"]
    assert usage["prompt_tokens"] > 0 and usage["completion_tokens"] > 0
    record = _record(request_id)
    assert record.prompt_tokens == usage["prompt_tokens"]
    assert record.completion_tokens == usage["completion_tokens"]
    assert record.cost > 0  # never an unmetered call
    assert_books_straight()


# --- streamed --------------------------------------------------------------------------------

def test_stream_500_before_first_byte_falls_back(gateway_http, fault_profiles, fake_provider,
                                                 settings):
    fake_provider.enqueue(*[Behavior(status=500)] * (settings.ROUTING_MAX_RETRIES + 1), OK)
    request_id, response = _post(gateway_http, "fault-primary", stream=True)
    assert response.status_code == 200, response.text
    events = _sse_events(response)
    assert events[-1] == "[DONE]"
    assert all("error" not in e for e in events if isinstance(e, dict))
    record = _record(request_id)
    assert record.served_model == "fault-fallback" and record.stream and record.status == "ok"
    assert_books_straight()


def test_stream_500_everywhere_is_a_plain_http_error(gateway_http, fault_profiles,
                                                     fake_provider):
    fake_provider.enqueue(*[Behavior(status=500)] * 10)
    request_id, response = _post(gateway_http, "fault-alone", stream=True)
    assert_openai_error(response, 502)
    assert _record(request_id).status == "upstream_error"
    assert_books_straight()


@pytest.mark.parametrize("behavior,kind", [
    (Behavior(cut_after=3, words=10), "cut"),
    (Behavior(stall_after=3, stall_seconds=5, words=10), "stall"),
], ids=["cut", "stall"])
def test_stream_broken_mid_way_ends_in_band_and_charges_what_was_relayed(
        gateway_http, fault_profiles, fake_provider, settings, behavior, kind):
    settings.PROVIDER_STREAM_IDLE_TIMEOUT_SECONDS = 0.3
    fake_provider.enqueue(behavior)
    request_id, response = _post(gateway_http, "fault-primary", stream=True)
    assert response.status_code == 200
    events = _sse_events(response)
    assert events[-1] == "[DONE]", events[-3:]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in events
                   if isinstance(c, dict) and c.get("choices"))
    assert text, "the chunks before the break were relayed"
    errors = [e["error"] for e in events if isinstance(e, dict) and "error" in e]
    assert len(errors) == 1 and errors[0]["type"] == "api_error"
    assert set(errors[0]) >= {"message", "type", "code", "param"}
    record = _record(request_id)
    assert record.status == "upstream_error" and record.stream
    # Never retried nor sent to the fallback once bytes reached the client.
    assert record.attempted_models == ["fault-primary"]
    assert len(fake_provider.requests) == 1
    assert record.completion_tokens > 0 and record.cost > 0
    assert_books_straight()


def test_stream_cut_before_any_content_is_retried(gateway_http, fault_profiles, fake_provider):
    fake_provider.enqueue(Behavior(cut_after=0), OK)
    request_id, response = _post(gateway_http, "fault-alone", stream=True)
    events = _sse_events(response)
    assert events[-1] == "[DONE]"
    assert not [e for e in events if isinstance(e, dict) and "error" in e]
    assert _record(request_id).attempted_models == ["fault-alone", "fault-alone"]
    assert_books_straight()


def test_stream_without_usage_is_charged_from_relayed_tokens(gateway_http, fault_profiles,
                                                             fake_provider):
    fake_provider.enqueue(Behavior(usage=False, words=9))
    request_id, response = _post(gateway_http, "fault-alone", stream=True)
    events = _sse_events(response)
    usage = [e["usage"] for e in events if isinstance(e, dict) and e.get("usage")]
    assert usage and usage[-1]["completion_tokens"] > 0
    record = _record(request_id)
    assert record.status == "ok" and record.completion_tokens > 0 and record.cost > 0
    assert_books_straight()


def test_many_faults_in_a_row_leave_one_row_each_and_no_drift(gateway_http, fault_profiles,
                                                             fake_provider, settings):
    """A mixed sequence: every admitted request has exactly one row; spend equals the ledger."""
    settings.PROVIDER_READ_TIMEOUT_SECONDS = 0.3
    script = [Behavior(status=500), OK, Behavior(status=503), Behavior(malformed=True), OK,
              Behavior(usage=False), Behavior(drop=True), OK, Behavior(status=400)]
    fake_provider.enqueue(*script)
    ids = []
    for _ in range(5):
        request_id, response = _post(gateway_http, "fault-alone")
        assert response.status_code < 500 or response.json()["error"]
        ids.append(request_id)
    assert UsageRecord.objects.filter(request_id__in=ids).count() == 5
    assert UsageRecord.objects.count() == 5
    spent = sum(r.cost for r in UsageRecord.objects.all())
    assert spent > Decimal(0)
    assert_books_straight()


def test_client_disconnect_mid_stream_is_settled_once(live_gateway, api_key, fault_profiles,
                                                      fake_provider):
    """The client hangs up after two chunks: the relayed part is charged, one row, all released."""
    import time

    import httpx

    fake_provider.enqueue(Behavior(interval_ms=150, words=40))
    request_id = uuid.uuid4().hex
    body = {"model": "fault-alone", "messages": unique_prompt("disconnect"), "stream": True,
            "max_tokens": 64}
    with httpx.stream("POST", f"{live_gateway.api_base}/chat/completions", json=body, timeout=30,
                      headers={"Authorization": f"Bearer {api_key.key}",
                               "X-Request-ID": request_id}) as response:
        assert response.status_code == 200
        lines = response.iter_lines()
        received = [line for _, line in zip(range(6), lines, strict=False)]
    assert any(line.startswith("data: ") for line in received)
    for _ in range(100):  # settlement runs when the server notices the hang-up
        if UsageRecord.objects.filter(request_id=request_id).exists():
            break
        time.sleep(0.1)
    record = _record(request_id)
    assert record.status == "client_disconnected" and record.http_status == 499
    assert record.completion_tokens > 0 and record.cost > 0
    assert_books_straight()


def test_keyless_self_hosted_server_is_called(gateway_http, fault_profiles, fake_provider,
                                              settings):
    """A self-hosted OpenAI-compatible server without a key is called without one (and never
    with the OpenAI key)."""
    settings.OPENAI_API_KEY = "sk-openai-key-that-must-stay-home"
    alone = fault_profiles["fault-alone"]
    alone.api_key_env = ""
    alone.save()
    from routing.selectors import invalidate_snapshot

    invalidate_snapshot()
    request_id, response = _post(gateway_http, "fault-alone")
    assert response.status_code == 200, response.text
    assert "authorization" not in fake_provider.last_request.headers
    assert not fake_provider.last_request.sent_key(settings.OPENAI_API_KEY)
    assert _record(request_id).status == "ok"
