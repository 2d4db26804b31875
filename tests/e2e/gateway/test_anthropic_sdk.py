"""End to end: the official anthropic SDK, unchanged, against the live gateway's /v1/messages."""

import time
import uuid
from decimal import Decimal

import anthropic
import pytest

from budgets.models import UsageRecord
from budgets.services import budget_set
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


def test_tool_use_round_trip_on_an_anthropic_model(client, claude_model, fake_provider):
    sent = _tool_use_round_trip(client, fake_provider, "fake-claude", stream=False)
    assert fake_provider.requests[-1].path.endswith("/messages")
    assert sent["tools"] == [WEATHER_TOOL]
    assistant, result = sent["messages"][-2:]
    assert {"type": "tool_use", "id": "toolu_fake_1", "name": "get_weather",
            "input": {"city": "Paris"}} in assistant["content"]
    assert result["content"] == [{"type": "tool_result", "tool_use_id": "toolu_fake_1",
                                  "content": "sunny, 24 C"}]


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
