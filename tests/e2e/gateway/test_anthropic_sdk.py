"""End to end: the official anthropic SDK, unchanged, against the live gateway's /v1/messages."""

import base64
import struct
import time
import uuid
import zlib
from decimal import Decimal

import anthropic
import httpx
import pytest

from budgets.models import UsageRecord
from budgets.services import budget_set
from tests.toolkit.assertions import assert_anthropic_error, assert_openai_error
from tests.toolkit.fakeprovider import Behavior, ToolCall
from tests.toolkit.gateway_calls import wait_for_record

WEATHER_TOOL = {"name": "get_weather", "description": "The weather in a city now.",
                "input_schema": {"type": "object", "properties": {"city": {"type": "string"}},
                                 "required": ["city"]}}


@pytest.fixture
def client(live_gateway, api_key, simulated_profiles) -> anthropic.Anthropic:
    """The anthropic SDK pointed at the gateway root (it appends /v1/messages), x-api-key."""
    return anthropic.Anthropic(base_url=live_gateway.url, api_key=api_key.key, max_retries=0,
                               timeout=30)


@pytest.fixture
def tool_model(fake_profile, settings):
    """An OpenAI-compatible profile on the fake provider that can call tools."""
    settings.ENABLE_SEMANTIC_CACHE = False  # each turn must reach the scripted provider
    return fake_profile("fake-tools", supports_tools=True)


@pytest.fixture
def claude_model(fake_profile, settings, monkeypatch):
    """An Anthropic profile on the fake provider: the request goes back out as Anthropic's."""
    settings.ENABLE_SEMANTIC_CACHE = False
    monkeypatch.setenv("MESSAGES_FAKE_ANTHROPIC_KEY", "sk-ant-fake-for-messages-tests")
    return fake_profile("fake-claude", provider="anthropic", upstream="claude-haiku-4-5",
                        api_key_env="MESSAGES_FAKE_ANTHROPIC_KEY", supports_tools=True)


def _question() -> str:
    return f"What is the capital of France? [{uuid.uuid4().hex[:10]}]"


def test_create_answers_a_message_and_writes_one_ledger_row(client):
    message = client.messages.create(
        model="simulated-standard", max_tokens=32, system="Be brief.",
        messages=[{"role": "user", "content": _question()}])

    assert message.type == "message" and message.role == "assistant"
    assert message.id.startswith("msg_")
    assert message.model == "simulated-standard"
    assert message.stop_reason in ("end_turn", "max_tokens")
    assert message.content[0].type == "text"
    assert message.content[0].text.startswith("[simulated]")
    assert message.usage.input_tokens > 0 and 0 < message.usage.output_tokens <= 32
    record = UsageRecord.objects.get(request_id=message.id.removeprefix("msg_"))
    assert record.endpoint == "messages" and record.status == "ok" and not record.stream
    assert record.prompt_tokens == message.usage.input_tokens
    assert record.completion_tokens == message.usage.output_tokens
    assert float(record.cost) == pytest.approx(message.usage.model_extra["cost"])


def test_stream_relays_text_deltas_the_final_message_and_usage(client):
    with client.messages.stream(model="simulated-efficient", max_tokens=64,
                                messages=[{"role": "user", "content": _question()}]) as stream:
        deltas = list(stream.text_stream)
        final = stream.get_final_message()

    assert len(deltas) > 1 and "".join(deltas) == final.content[0].text
    assert final.content[0].text.startswith("[simulated]")
    assert final.stop_reason in ("end_turn", "max_tokens")
    record = UsageRecord.objects.get(request_id=final.id.removeprefix("msg_"))
    assert record.endpoint == "messages" and record.stream and record.status == "ok"
    assert final.usage.output_tokens == record.completion_tokens > 0
    assert final.usage.input_tokens == record.prompt_tokens > 0


def test_stream_events_are_anthropics(client):
    with client.messages.stream(model="simulated-efficient", max_tokens=16,
                                messages=[{"role": "user", "content": _question()}]) as stream:
        kinds = [event.type for event in stream]
    assert kinds[0] == "message_start"
    assert kinds[-2:] == ["message_delta", "message_stop"]
    assert {"content_block_start", "content_block_delta", "content_block_stop"} <= set(kinds)


def _tool_use_round_trip(client, fake_provider, model: str, *, stream: bool):
    fake_provider.enqueue(Behavior(tool_call=ToolCall(name="get_weather",
                                                      arguments={"city": "Paris"},
                                                      id="toolu_fake_1")),
                          Behavior(text="It is sunny in Paris."))
    ask = [{"role": "user", "content": "What is the weather in Paris?"}]
    if stream:
        with client.messages.stream(model=model, max_tokens=64, tools=[WEATHER_TOOL],
                                    messages=ask) as events:
            first = events.get_final_message()
    else:
        first = client.messages.create(model=model, max_tokens=64, tools=[WEATHER_TOOL],
                                       messages=ask)
    assert first.stop_reason == "tool_use"
    tool_use = next(block for block in first.content if block.type == "tool_use")
    assert tool_use.name == "get_weather" and tool_use.input == {"city": "Paris"}
    assert tool_use.id == "toolu_fake_1"

    final = client.messages.create(
        model=model, max_tokens=64, tools=[WEATHER_TOOL],
        messages=[*ask, {"role": "assistant", "content": [b.model_dump() for b in first.content]},
                  {"role": "user", "content": [{"type": "tool_result",
                                                "tool_use_id": tool_use.id,
                                                "content": "sunny, 24 C"}]}])
    assert final.stop_reason == "end_turn"
    assert final.content[0].text == "It is sunny in Paris."
    return fake_provider.requests[-1].body


@pytest.mark.parametrize("stream", [False, True], ids=["create", "stream"])
def test_tool_use_round_trip_on_an_openai_compatible_model(client, tool_model, fake_provider,
                                                            stream):
    sent = _tool_use_round_trip(client, fake_provider, "fake-tools", stream=stream)
    assert sent["tools"][0]["function"]["name"] == "get_weather"
    assert sent["tools"][0]["function"]["parameters"] == WEATHER_TOOL["input_schema"]
    assistant, result = sent["messages"][-2:]
    assert assistant["tool_calls"][0]["id"] == "toolu_fake_1"
    assert result == {"role": "tool", "tool_call_id": "toolu_fake_1", "content": "sunny, 24 C"}
    assert UsageRecord.objects.filter(endpoint="messages").count() == 2


@pytest.mark.parametrize("stream", [False, True], ids=["create", "stream"])
def test_tool_use_round_trip_on_an_anthropic_model(client, claude_model, fake_provider, stream):
    sent = _tool_use_round_trip(client, fake_provider, "fake-claude", stream=stream)
    assert fake_provider.requests[-1].path.endswith("/messages")
    assert sent["tools"] == [WEATHER_TOOL]
    assistant, result = sent["messages"][-2:]
    assert {"type": "tool_use", "id": "toolu_fake_1", "name": "get_weather",
            "input": {"city": "Paris"}} in assistant["content"]
    assert result["content"] == [{"type": "tool_result", "tool_use_id": "toolu_fake_1",
                                  "content": "sunny, 24 C"}]


def test_a_stream_that_breaks_mid_way_ends_with_an_error_event(client, tool_model,
                                                               fake_provider):
    fake_provider.enqueue(Behavior(words=40, cut_after=3))
    received: list[str] = []
    with pytest.raises(anthropic.APIStatusError) as caught:
        with client.messages.stream(model="fake-tools", max_tokens=64,
                                    messages=[{"role": "user", "content": _question()}]) as stream:
            received.extend(stream.text_stream)
    assert received  # the text before the break was relayed
    assert caught.value.body["type"] == "error"
    assert caught.value.body["error"]["type"] == "api_error"
    record = wait_for_record()
    assert record.endpoint == "messages" and record.stream and record.status == "upstream_error"
    assert record.completion_tokens > 0


def test_count_tokens_bounds_the_prompt_without_a_call_or_a_charge(client, tool_model,
                                                                 fake_provider):
    ask = {"model": "fake-tools", "system": "Be brief.",
           "messages": [{"role": "user", "content": _question()}]}
    plain = client.messages.count_tokens(**ask).input_tokens
    with_tools = client.messages.count_tokens(**ask, tools=[WEATHER_TOOL]).input_tokens
    assert UsageRecord.objects.count() == 0 and fake_provider.requests == []

    answered = client.messages.create(max_tokens=8, **ask)
    assert plain >= answered.usage.input_tokens > 0
    assert with_tools > plain


def test_bearer_auth_is_accepted(live_gateway, api_key, simulated_profiles):
    client = anthropic.Anthropic(base_url=live_gateway.url, auth_token=api_key.key,
                                 max_retries=0, timeout=30)
    message = client.messages.create(model="simulated-standard", max_tokens=8,
                                     messages=[{"role": "user", "content": _question()}])
    assert message.content[0].text


def test_a_bad_key_is_an_authentication_error(live_gateway, simulated_profiles):
    client = anthropic.Anthropic(base_url=live_gateway.url, api_key="llmops-nope.wrong",
                                 max_retries=0, timeout=30)
    with pytest.raises(anthropic.AuthenticationError) as caught:
        client.messages.create(model="simulated-standard", max_tokens=8,
                               messages=[{"role": "user", "content": "hi"}])
    assert caught.value.status_code == 401
    assert caught.value.body["type"] == "error"
    assert caught.value.body["error"]["type"] == "authentication_error"
    assert UsageRecord.objects.count() == 0


def test_a_repeat_is_a_cache_hit_with_its_ledger_row(client):
    ask = {"model": "simulated-standard", "max_tokens": 32,
           "messages": [{"role": "user", "content": _question()}]}
    first = client.messages.create(**ask)
    for _ in range(50):  # the answer is stored behind the response
        raw = client.messages.with_raw_response.create(**ask)
        if raw.headers["x-llmops-cache"].startswith("hit"):
            break
        time.sleep(0.1)
    else:
        pytest.fail("the repeat was never answered from the cache")
    hit = raw.parse()
    assert hit.content[0].text == first.content[0].text
    record = wait_for_record(raw.headers["x-request-id"])
    assert record.endpoint == "messages" and record.cost == 0 and record.cost_saved > 0
    assert record.cache_status.startswith("hit")

    with client.messages.stream(**ask) as stream:  # a hit is replayed as Anthropic's events
        replayed = stream.get_final_message()
    assert replayed.content[0].text == first.content[0].text
    assert replayed.usage.output_tokens == first.usage.output_tokens
    assert UsageRecord.objects.filter(endpoint="messages", cost=0).count() == 2


def test_a_budget_refusal_is_an_anthropic_billing_error(client, api_key):
    budget_set(scope="key", api_key=api_key.api_key, daily_limit=Decimal("0.0000001"))
    with pytest.raises(anthropic.APIStatusError) as caught:
        client.messages.create(model="simulated-premium", max_tokens=1000,
                               messages=[{"role": "user", "content": _question()}])
    assert caught.value.status_code == 402
    body = caught.value.body
    assert body["type"] == "error" and body["error"]["type"] == "billing_error"
    assert "budget" in body["error"]["message"].lower()
    assert body["error"]["llmops"]["code"] == "budget_exceeded"
    assert UsageRecord.objects.count() == 0


# --- The reservation bounds tools and images -------------------------------------------------

def _png(width: int, height: int) -> str:
    """Return the base64 of a PNG header announcing `width` x `height` (what the gateway reads
    to bound an image's tokens)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    raw = (b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + ihdr
           + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr)))
    return base64.b64encode(raw).decode()


def _big_tool(index: int) -> dict:
    """A tool whose definition is ~1.8k tokens."""
    properties = {f"field_{index}_{n}": {
        "type": "string", "description": f"Parameter {n} of operation {index}: "
        + "the value to use " * 9, "enum": [f"option_{n}_{k}" for k in range(4)]}
        for n in range(24)}
    return {"name": f"operation_{index}", "description": "Run one back-office operation. " * 8,
            "input_schema": {"type": "object", "properties": properties}}


@pytest.fixture
def dear_model(fake_profile, settings, monkeypatch):
    """A vision and tools model at $1,000 per million prompt tokens: a ~1k-token image or tool
    definition costs about $1, the short question about $0.02."""
    settings.ENABLE_SEMANTIC_CACHE = False
    monkeypatch.setenv("MESSAGES_FAKE_OPENAI_KEY", "sk-fake-for-messages-tests")
    return fake_profile("fake-dear", provider="openai", upstream="gpt-4o",
                        api_key_env="MESSAGES_FAKE_OPENAI_KEY", supports_tools=True,
                        supports_vision=True, input_price_per_token="0.001",
                        output_price_per_token="0.001")


@pytest.fixture
def half_dollar_client(live_gateway, make_api_key, dear_model):
    issued = make_api_key(team="messages-budget", user="frugal")
    budget_set(scope="key", api_key=issued.api_key, daily_limit=Decimal("0.5"))
    return anthropic.Anthropic(base_url=live_gateway.url, api_key=issued.key, max_retries=0,
                               timeout=30)


_IMAGES = {
    "base64": {"type": "base64", "media_type": "image/png", "data": _png(1920, 1080)},
    "url": {"type": "url", "url": "https://images.example.invalid/screenshot.png"},
}


@pytest.mark.parametrize("extra", ["tools", "base64", "url"])
def test_tools_and_images_count_in_the_reservation(half_dollar_client, fake_provider, extra):
    question = {"type": "text", "text": "Which operation fits this?"}
    fake_provider.enqueue(Behavior(text="operation 1"))
    plain = half_dollar_client.messages.create(
        model="fake-dear", max_tokens=1, messages=[{"role": "user", "content": [question]}])
    assert plain.content[0].text  # the question alone fits the budget

    if extra == "tools":
        kwargs = {"tools": [_big_tool(1)], "messages": [{"role": "user",
                                                        "content": [question]}]}
    else:
        kwargs = {"messages": [{"role": "user", "content": [
            question, {"type": "image", "source": _IMAGES[extra]}]}]}
    counted = half_dollar_client.messages.count_tokens(model="fake-dear", **kwargs)
    assert counted.input_tokens > 500
    with pytest.raises(anthropic.APIStatusError) as caught:
        half_dollar_client.messages.create(model="fake-dear", max_tokens=1, **kwargs)
    assert caught.value.status_code == 402
    assert caught.value.body["error"]["type"] == "billing_error"
    assert len(fake_provider.requests) == 1  # the refused request reached no model
    assert UsageRecord.objects.filter(endpoint="messages").count() == 1


def test_images_reach_the_provider_as_image_parts(client, dear_model, fake_provider):
    client.messages.create(model="fake-dear", max_tokens=8, messages=[{"role": "user", "content": [
        {"type": "image", "source": _IMAGES["base64"]},
        {"type": "image", "source": _IMAGES["url"]},
        {"type": "text", "text": "Compare them."}]}])
    parts = fake_provider.requests[-1].body["messages"][-1]["content"]
    assert [part["type"] for part in parts] == ["image_url", "image_url", "text"]
    assert parts[0]["image_url"]["url"] == f"data:image/png;base64,{_IMAGES['base64']['data']}"
    assert parts[1]["image_url"]["url"] == _IMAGES["url"]["url"]


# --- Bad input: Anthropic's error shape, never a 500 ------------------------------------------

_HI = [{"role": "user", "content": "hi"}]
BAD_BODIES = {
    "no max_tokens": ({"model": "simulated-standard", "messages": _HI}, "max_tokens"),
    "no messages": ({"model": "simulated-standard", "max_tokens": 5, "messages": []},
                    "messages"),
    "system role": ({"model": "simulated-standard", "max_tokens": 5,
                     "messages": [{"role": "system", "content": "x"}]}, "role"),
    "unknown block": ({"model": "simulated-standard", "max_tokens": 5, "messages": [
        {"role": "user", "content": [{"type": "document", "source": {}}]}]}, "document"),
    "tool_use from the user": ({"model": "simulated-standard", "max_tokens": 5, "messages": [
        {"role": "user", "content": [{"type": "tool_use", "id": "t", "name": "f",
                                      "input": {}}]}]}, "type"),
    "bad image source": ({"model": "simulated-standard", "max_tokens": 5, "messages": [
        {"role": "user", "content": [{"type": "image", "source": {
            "type": "base64", "media_type": "image/tiff", "data": "AAAA"}}]}]},
        "media_type"),
    "server tool": ({"model": "simulated-standard", "max_tokens": 5, "messages": _HI,
                     "tools": [{"type": "web_search_20250305", "name": "web_search"}]},
                    "web_search_20250305"),
    "tool_choice names no tool": ({"model": "simulated-standard", "max_tokens": 5,
                                   "messages": _HI, "tools": [WEATHER_TOOL],
                                   "tool_choice": {"type": "tool", "name": "nope"}}, "nope"),
    "temperature above 1": ({"model": "simulated-standard", "max_tokens": 5, "messages": _HI,
                             "temperature": 1.5}, "temperature"),
    "five stop sequences": ({"model": "simulated-standard", "max_tokens": 5, "messages": _HI,
                             "stop_sequences": list("abcde")}, "stop_sequences"),
    "content an object": ({"model": "simulated-standard", "max_tokens": 5,
                           "messages": [{"role": "user", "content": {"text": "x"}}]},
                          "content"),
}


@pytest.fixture
def raw(live_gateway, api_key, simulated_profiles):
    with httpx.Client(base_url=live_gateway.url, timeout=30,
                      headers={"x-api-key": api_key.key,
                               "anthropic-version": "2023-06-01",
                               "anthropic-beta": "prompt-caching-2024-07-31"}) as http:
        yield http


@pytest.mark.parametrize("case", list(BAD_BODIES))
def test_bad_bodies_are_invalid_request_errors(raw, case):
    body, mentioned = BAD_BODIES[case]
    for path in ("/v1/messages", "/v1/messages/count_tokens"):
        if path.endswith("count_tokens") and mentioned in ("max_tokens", "temperature",
                                                           "stop_sequences"):
            continue  # not count_tokens fields
        error = assert_anthropic_error(raw.post(path, json=body), 400,
                                       error_type="invalid_request_error")
        assert mentioned in error["message"], error
    assert UsageRecord.objects.count() == 0


def test_bodies_that_are_not_json_objects(raw):
    for content, kind in ((b"{", "application/json"), (b"", "application/json"),
                          (b"[]", "application/json"), (b"max_tokens=1", "text/plain")):
        response = raw.post("/v1/messages", content=content, headers={"content-type": kind})
        assert_anthropic_error(response, (400, 415), error_type="invalid_request_error")


def test_an_unknown_model_is_not_found(raw):
    error = assert_anthropic_error(raw.post("/v1/messages", json={
        "model": "claude-nonexistent", "max_tokens": 5, "messages": _HI}), 404,
        error_type="not_found_error")
    assert "claude-nonexistent" in error["message"]


def test_no_key_is_an_authentication_error(live_gateway, simulated_profiles):
    for path in ("/v1/messages", "/v1/messages/count_tokens"):
        response = httpx.post(f"{live_gateway.url}{path}", timeout=30, json={
            "model": "simulated-standard", "max_tokens": 5, "messages": _HI})
        assert_anthropic_error(response, 401, error_type="authentication_error")


def test_an_oversized_body_is_request_too_large(raw, settings):
    settings.LLMOPS_MAX_BODY_BYTES = 1000
    response = raw.post("/v1/messages", json={"model": "simulated-standard", "max_tokens": 5,
                                              "messages": [{"role": "user",
                                                            "content": "x" * 2000}]})
    assert_anthropic_error(response, 413, error_type="request_too_large")


def test_the_chat_endpoint_keeps_openais_error_shape(raw):
    response = raw.post("/v1/chat/completions", json={"model": "simulated-standard"})
    assert_openai_error(response, 400)
