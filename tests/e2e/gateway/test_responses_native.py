"""End to end: a profile on the `openai_responses` provider. Every front door reaches it, and
what goes upstream is the Responses wire format (`POST /v1/responses`) — checked on the fake
provider's recorded requests — while the ledger row carries the provider's own usage."""

import json
import uuid

import anthropic
import pytest

from budgets.models import UsageRecord
from tests.toolkit.fakeprovider import Behavior, ToolCall
from tests.toolkit.gateway_calls import wait_for_record

WEATHER_TOOL = {
    "type": "function", "name": "get_weather", "description": "Current weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                   "required": ["city"]},
}


def fresh(text: str) -> str:
    """Return `text` tagged so that no earlier test's cached answer matches it."""
    return f"{text} [{uuid.uuid4().hex[:12]}]"


@pytest.fixture
def native_model(fake_profile, settings, monkeypatch):
    """A profile on the Responses provider, served by the fake provider's /v1/responses."""
    settings.ENABLE_SEMANTIC_CACHE = False  # each turn must reach the scripted provider
    monkeypatch.setenv("NATIVE_RESPONSES_FAKE_KEY", "sk-fake-for-native-responses")
    return fake_profile("native-resp", provider="openai_responses", upstream="gpt-4.1-mini",
                        api_key_env="NATIVE_RESPONSES_FAKE_KEY", supports_tools=True,
                        supports_json_mode=True)


def assert_billed_as_invoiced(record: UsageRecord, fake_provider) -> None:
    """The ledger row's tokens are the ones the provider reported and billed for the call.

    The fake bills every token before its bytes leave, so once the client holds the whole answer
    this call's invoice line is final; waiting for the shared provider to be idle would also wait
    on other tests' calls still upstream (a verification, a client that left)."""
    billed = fake_provider.invoice[record.request_id]
    assert (record.prompt_tokens, record.completion_tokens) == (billed.prompt_tokens,
                                                                billed.completion_tokens)
    assert billed.calls == 1 and record.served_model == "native-resp" and record.cost > 0


def test_non_streamed_response_goes_upstream_natively(openai_client, native_model,
                                                      fake_provider):
    question = fresh("What is the capital of France?")
    response = openai_client.responses.create(
        model="native-resp", input=question, instructions="Be brief.", max_output_tokens=32,
        temperature=0.2)

    [sent] = fake_provider.requests
    assert (sent.method, sent.path) == ("POST", "/v1/responses")
    assert sent.sent_key("sk-fake-for-native-responses")
    assert sent.body == {"model": "gpt-4.1-mini", "instructions": "Be brief.",
                         "input": [{"role": "user", "content": question}],
                         "temperature": 0.2, "max_output_tokens": 32, "store": False}
    assert response.status == "completed" and response.output_text.startswith("Echo: What")
    record = UsageRecord.objects.get(request_id=response.usage.model_extra["llmops"]["request_id"])
    assert record.endpoint == "responses" and record.status == "ok" and not record.stream
    assert (response.usage.input_tokens, response.usage.output_tokens) == (
        record.prompt_tokens, record.completion_tokens)
    assert_billed_as_invoiced(record, fake_provider)


def test_streamed_response_goes_upstream_as_an_event_stream(openai_client, native_model,
                                                            fake_provider):
    fake_provider.enqueue(Behavior(cached_tokens=4, reasoning_tokens=3))
    with openai_client.responses.stream(model="native-resp",
                                        input=fresh("Tell me a short story")) as stream:
        events = list(stream)
        final = stream.get_final_response()

    [sent] = fake_provider.requests
    assert sent.path == "/v1/responses" and sent.body["stream"] is True
    assert sent.headers["accept"] == "text/event-stream"
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    assert len(deltas) > 1 and "".join(deltas) == final.output_text
    usage = final.usage
    assert usage.input_tokens_details.cached_tokens == 4
    assert usage.output_tokens_details.reasoning_tokens == 3
    record = wait_for_record(usage.model_extra["llmops"]["request_id"])
    assert record.endpoint == "responses" and record.stream and record.status == "ok"
    assert (record.cached_tokens, record.completion_tokens) == (4, usage.output_tokens)
    assert_billed_as_invoiced(record, fake_provider)


def test_function_call_round_trip_with_previous_response_id(openai_client, native_model,
                                                            fake_provider):
    fake_provider.enqueue(Behavior(text="", tool_call=ToolCall(id="call_native_1")))
    fake_provider.enqueue(Behavior(text="It is sunny in Paris."))
    question = fresh("What is the weather in Paris?")

    first = openai_client.responses.create(model="native-resp", tools=[WEATHER_TOOL],
                                           tool_choice="required", input=question)

    [call] = first.output
    assert (call.type, call.call_id, call.name) == ("function_call", "call_native_1",
                                                    "get_weather")
    assert json.loads(call.arguments) == {"city": "Paris"}
    sent = fake_provider.requests[-1].body
    assert sent["tools"] == [{"type": "function", **{k: v for k, v in WEATHER_TOOL.items()
                                                     if k != "type"}}]
    assert sent["tool_choice"] == "required"

    second = openai_client.responses.create(
        model="native-resp", tools=[WEATHER_TOOL], previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": call.call_id,
                "output": json.dumps({"sky": "sunny"})}])

    assert second.output_text == "It is sunny in Paris."
    assert second.previous_response_id == first.id
    sent = fake_provider.requests[-1]
    assert sent.path == "/v1/responses"
    assert sent.body["input"] == [
        {"role": "user", "content": question},
        {"type": "function_call", "call_id": "call_native_1", "name": "get_weather",
         "arguments": call.arguments},
        {"type": "function_call_output", "call_id": "call_native_1",
         "output": json.dumps({"sky": "sunny"})}]
    assert sent.body["store"] is False  # the gateway kept the first turn, not the provider
    records = UsageRecord.objects.filter(endpoint="responses").order_by("created_at")
    assert records.count() == 2
    for record in records:
        assert_billed_as_invoiced(record, fake_provider)


def test_chat_completions_reach_the_profile(openai_client, native_model, fake_provider):
    completion = openai_client.chat.completions.create(
        model="native-resp", max_tokens=20,
        messages=[{"role": "system", "content": "You are terse."},
                  {"role": "user", "content": fresh("Say hello")}])

    [sent] = fake_provider.requests
    assert sent.path == "/v1/responses"
    assert sent.body["instructions"] == "You are terse."
    assert sent.body["max_output_tokens"] == 20
    assert completion.choices[0].message.content.startswith("Echo: Say hello")
    record = wait_for_record()
    assert record.endpoint == "chat.completions"
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (
        record.prompt_tokens, record.completion_tokens)
    assert_billed_as_invoiced(record, fake_provider)


def test_messages_reach_the_profile(live_gateway, api_key, native_model, fake_provider):
    client = anthropic.Anthropic(base_url=live_gateway.url, api_key=api_key.key, max_retries=0,
                                 timeout=30)
    message = client.messages.create(model="native-resp", max_tokens=20, system="Be brief.",
                                     messages=[{"role": "user", "content": fresh("Hello")}])

    [sent] = fake_provider.requests
    assert sent.path == "/v1/responses" and sent.body["instructions"] == "Be brief."
    assert message.content[0].text.startswith("Echo: Hello")
    record = wait_for_record()
    assert record.endpoint == "messages"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (
        record.prompt_tokens, record.completion_tokens)
    assert_billed_as_invoiced(record, fake_provider)
