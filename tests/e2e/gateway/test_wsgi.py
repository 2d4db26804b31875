"""End to end under WSGI: Django's own `manage.py runserver` (llmops.wsgi) serves the official
openai SDK streamed and non-streamed completions whole, each charged once at the right cost."""

import time
import uuid
from decimal import Decimal

import httpx
import openai
import pytest

from budgets.models import UsageRecord
from tests.toolkit.fakeprovider import Behavior
from tests.toolkit.gateway_process import GatewayProcess, gateway_database_url
from tests.toolkit.sdk import read_stream

PRICE_IN, PRICE_OUT = Decimal("0.000001"), Decimal("0.000002")


@pytest.fixture
def wsgi_gateway(transactional_db):
    with GatewayProcess(database_url=gateway_database_url(), server="wsgi") as gateway:
        yield gateway


@pytest.fixture
def wsgi_client(wsgi_gateway, api_key, fake_profile):
    fake_profile("wsgi-model", upstream="fake-ok", input_price_per_token=PRICE_IN,
                 output_price_per_token=PRICE_OUT)
    return openai.OpenAI(base_url=f"{wsgi_gateway.url}/v1", api_key=api_key.key,
                         max_retries=0, timeout=30)


def _record(request_id: str, timeout: float = 10.0) -> UsageRecord:
    """Return the request's one ledger row, once written (settlement may trail the answer)."""
    deadline = time.monotonic() + timeout
    while not UsageRecord.objects.filter(request_id=request_id).exists():
        assert time.monotonic() < deadline, f"no ledger row for {request_id}"
        time.sleep(0.05)
    return UsageRecord.objects.get(request_id=request_id)


def _assert_charged(record: UsageRecord, *, prompt: int, completion: int) -> None:
    assert record.status == "ok"
    assert (record.prompt_tokens, record.completion_tokens) == (prompt, completion)
    assert record.cost == prompt * PRICE_IN + completion * PRICE_OUT


def test_stream_arrives_whole_and_is_charged_once(wsgi_client, fake_provider):
    text = "one two three four five six seven eight nine ten eleven twelve"
    fake_provider.enqueue(Behavior(text=text, interval_ms=20))
    stream = wsgi_client.chat.completions.create(
        model="wsgi-model", messages=[{"role": "user", "content": "count to twelve"}],
        stream=True, stream_options={"include_usage": True})
    read = read_stream(stream)
    usage = read.usage
    assert read.text == text
    assert read.finish_reason == "stop"
    assert usage is not None and usage.completion_tokens == 12
    request_id = usage.model_extra["llmops"]["request_id"]
    record = _record(request_id)
    assert record.stream
    _assert_charged(record, prompt=usage.prompt_tokens, completion=12)
    assert float(record.cost) == pytest.approx(usage.model_extra["cost"])
    assert UsageRecord.objects.count() == 1
    invoice = fake_provider.invoice[request_id]
    assert (invoice.prompt_tokens, invoice.completion_tokens) == (usage.prompt_tokens, 12)


def test_non_streamed_completion(wsgi_client):
    completion = wsgi_client.chat.completions.create(
        model="wsgi-model", messages=[{"role": "user", "content": "hello there"}])
    assert completion.choices[0].message.content
    request_id = completion.usage.model_extra["llmops"]["request_id"]
    _assert_charged(_record(request_id), prompt=completion.usage.prompt_tokens,
                    completion=completion.usage.completion_tokens)
    assert UsageRecord.objects.count() == 1


def test_responses_stream_arrives_whole_and_is_charged_once(wsgi_client, fake_provider):
    text = "one two three four five six"
    fake_provider.enqueue(Behavior(text=text, interval_ms=20))
    with wsgi_client.responses.stream(model="wsgi-model", input="count to six") as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(deltas) == text == final.output_text and len(deltas) == 6
    record = _record(final.usage.model_extra["llmops"]["request_id"])
    _assert_charged(record, prompt=final.usage.input_tokens, completion=6)
    assert record.endpoint == "responses" and record.stream


def test_streams_run_side_by_side(wsgi_client, fake_provider):
    """Two slow streams open at once and read in turns: runserver's threads each relay their
    own (served one after the other, the second would not even start while the first waits
    for its reader)."""
    fake_provider.enqueue(Behavior(words=10, interval_ms=50), Behavior(words=10, interval_ms=50))
    streams = [iter(wsgi_client.chat.completions.create(
        model="wsgi-model", messages=[{"role": "user", "content": f"story {n}"}], stream=True,
        stream_options={"include_usage": True})) for n in range(2)]
    assert len(fake_provider.requests) == 2  # both upstream streams are open
    texts = ["", ""]
    open_streams = {0, 1}
    while open_streams:
        for n in sorted(open_streams):
            chunk = next(streams[n], None)
            if chunk is None:
                open_streams.discard(n)
            elif chunk.choices:
                texts[n] += chunk.choices[0].delta.content or ""
    assert [len(text.split()) for text in texts] == [10, 10]
    deadline = time.monotonic() + 10
    while UsageRecord.objects.filter(status="ok").count() < 2:
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_client_leaving_mid_stream_closes_upstream_and_is_charged(wsgi_gateway, api_key,
                                                                  fake_profile, fake_provider):
    fake_profile("wsgi-model", upstream="fake-ok", input_price_per_token=PRICE_IN,
                 output_price_per_token=PRICE_OUT)
    fake_provider.enqueue(Behavior(words=200, interval_ms=50))
    request_id = uuid.uuid4().hex
    with httpx.stream("POST", f"{wsgi_gateway.url}/v1/chat/completions", timeout=30,
                      headers={"Authorization": f"Bearer {api_key.key}",
                               "X-Request-ID": request_id},
                      json={"model": "wsgi-model", "stream": True, "max_tokens": 300,
                            "messages": [{"role": "user", "content": "a long story"}]}) as resp:
        assert resp.status_code == 200
        received = 0
        for line in resp.iter_lines():
            if '"content"' in line:
                received += 1
            if received >= 5:
                break  # the client leaves
    record = _record(request_id, timeout=20)
    assert record.status == "client_disconnected" and record.http_status == 499
    fake_provider.wait_until_idle(timeout=20)
    invoice = fake_provider.invoice[request_id]
    assert invoice.cut, "the upstream stream was closed, not read to its end"
    # No usage report came (the stream was cut): the gateway charges its own count of the
    # prompt and of the text relayed, never less than the provider billed.
    assert record.prompt_tokens >= invoice.prompt_tokens > 0
    assert record.completion_tokens >= invoice.completion_tokens >= 5
    assert invoice.completion_tokens < 200 and record.completion_tokens < 200
    assert record.cost == (record.prompt_tokens * PRICE_IN
                           + record.completion_tokens * PRICE_OUT)
    assert UsageRecord.objects.count() == 1


def test_anthropic_messages_stream_arrives_whole_and_is_charged_once(wsgi_client, wsgi_gateway,
                                                                     api_key, fake_provider):
    import anthropic

    text = "one two three four five six seven eight"
    fake_provider.enqueue(Behavior(text=text, interval_ms=20))
    client = anthropic.Anthropic(base_url=wsgi_gateway.url, api_key=api_key.key,
                                 max_retries=0, timeout=30)
    with client.messages.stream(model="wsgi-model", max_tokens=64,
                                messages=[{"role": "user", "content": "count to eight"}]) as stream:
        received = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert received == text == final.content[0].text
    record = _record(final.id.removeprefix("msg_"))
    assert record.stream and record.endpoint == "messages"
    _assert_charged(record, prompt=final.usage.input_tokens, completion=8)
    assert final.usage.output_tokens == 8
