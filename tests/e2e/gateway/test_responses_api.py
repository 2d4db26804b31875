"""End to end: the official openai SDK's Responses API (`client.responses`) against a live
gateway, with simulated models and the fake provider scripted for tool calls."""

import json
import time
import uuid

import httpx
import openai
import pytest

from budgets.models import UsageRecord
from tests.integration.budgets.test_reservation_bounds import big_tool, png
from tests.toolkit.assertions import assert_openai_error
from tests.toolkit.fakeprovider import Behavior, ToolCall

WEATHER_TOOL = {
    "type": "function", "name": "get_weather", "description": "Current weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                   "required": ["city"]},
}


def fresh(text: str) -> str:
    """Return `text` tagged so that no earlier test's cached answer matches it."""
    return f"{text} [{uuid.uuid4().hex[:12]}]"


def record_of(response) -> UsageRecord:
    return UsageRecord.objects.get(request_id=response.usage.model_extra["llmops"]["request_id"])


@pytest.fixture
def tools_model(fake_profile):
    """An OpenAI-compatible profile on the fake provider that can call tools."""
    return fake_profile("resp-tools", upstream="gpt-4o-mini", supports_tools=True,
                        supports_json_mode=True)


def test_non_streamed_response(openai_client):
    response = openai_client.responses.create(
        model="simulated-standard", input=fresh("What is the capital of France?"),
        instructions="Be brief.", max_output_tokens=32, metadata={"ticket": "42"})

    assert response.object == "response" and response.id.startswith("resp_")
    assert response.status == "completed" and response.incomplete_details is None
    assert response.model == "simulated-standard"
    assert response.instructions == "Be brief." and response.metadata == {"ticket": "42"}
    [message] = response.output
    assert message.type == "message" and message.role == "assistant"
    assert message.content[0].type == "output_text"
    assert response.output_text.startswith("[simulated]")
    usage = response.usage
    assert usage.input_tokens > 0 and 0 < usage.output_tokens <= 32
    assert usage.total_tokens == usage.input_tokens + usage.output_tokens
    assert usage.input_tokens_details.cached_tokens == 0
    assert usage.output_tokens_details.reasoning_tokens == 0
    record = record_of(response)
    assert record.endpoint == "responses" and record.status == "ok" and not record.stream
    assert (record.prompt_tokens, record.completion_tokens) == (usage.input_tokens,
                                                                usage.output_tokens)
    assert float(record.cost) == pytest.approx(usage.model_extra["cost"])


def test_streamed_response_with_the_sdk_stream_helper(openai_client):
    with openai_client.responses.stream(model="simulated-efficient",
                                        input=fresh("Tell me a short story")) as stream:
        events = list(stream)
        final = stream.get_final_response()

    types = [event.type for event in events]
    assert types[:4] == ["response.created", "response.in_progress",
                         "response.output_item.added", "response.content_part.added"]
    assert types[-4:] == ["response.output_text.done", "response.content_part.done",
                          "response.output_item.done", "response.completed"]
    assert [event.sequence_number for event in events] == list(range(len(events)))
    text = "".join(event.delta for event in events if event.type == "response.output_text.delta")
    assert text.startswith("[simulated]") and text == final.output_text
    assert types.count("response.output_text.delta") > 1  # streamed, not in one piece
    completed = events[-1].response
    assert completed.status == "completed" and completed.usage.output_tokens > 0
    record = record_of(completed)
    assert record.endpoint == "responses" and record.stream and record.status == "ok"
    assert record.completion_tokens == completed.usage.output_tokens


def test_streamed_with_create_stream_true(openai_client):
    stream = openai_client.responses.create(model="simulated-standard", stream=True,
                                            input=[{"role": "user", "content": [
                                                {"type": "input_text",
                                                 "text": fresh("Say hello")}]}])
    events = list(stream)
    assert events[0].type == "response.created" and events[-1].type == "response.completed"
    assert events[-1].response.usage.total_tokens > 0


def test_function_calling_round_trip(openai_client, tools_model, fake_provider):
    fake_provider.enqueue(Behavior(text="", tool_call=ToolCall(id="call_weather_1")))
    fake_provider.enqueue(Behavior(text="It is sunny in Paris."))

    first = openai_client.responses.create(model="resp-tools", tools=[WEATHER_TOOL],
                                           input=fresh("What is the weather in Paris?"))

    [call] = first.output
    assert call.type == "function_call" and call.status == "completed"
    assert (call.name, call.call_id, json.loads(call.arguments)) == (
        "get_weather", "call_weather_1", {"city": "Paris"})
    sent = fake_provider.requests[-1].body
    assert sent["tools"] == [{"type": "function", "function": {
        "name": "get_weather", "description": WEATHER_TOOL["description"],
        "parameters": WEATHER_TOOL["parameters"]}}]

    second = openai_client.responses.create(
        model="resp-tools", tools=[WEATHER_TOOL], previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": call.call_id,
                "output": json.dumps({"sky": "sunny"})}])

    assert second.output_text == "It is sunny in Paris." and second.status == "completed"
    assert second.previous_response_id == first.id
    messages = fake_provider.requests[-1].body["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "tool"]
    assert messages[1]["tool_calls"][0]["id"] == "call_weather_1"
    assert messages[2] == {"role": "tool", "tool_call_id": "call_weather_1",
                           "content": json.dumps({"sky": "sunny"})}
    assert UsageRecord.objects.filter(endpoint="responses").count() == 2


def test_client_kept_state_round_trip(openai_client, tools_model, fake_provider):
    """The other way to continue (the Agents SDK's default): send the earlier output items back
    as input, with no previous_response_id and nothing stored."""
    fake_provider.enqueue(Behavior(text="Checking.", tool_call=ToolCall(id="call_state_1")))
    fake_provider.enqueue(Behavior(text="Sunny."))
    question = {"role": "user", "content": fresh("Weather in Paris?")}
    first = openai_client.responses.create(model="resp-tools", tools=[WEATHER_TOOL],
                                           input=[question], store=False)
    assert [item.type for item in first.output] == ["message", "function_call"]

    second = openai_client.responses.create(
        model="resp-tools", tools=[WEATHER_TOOL], store=False,
        input=[question, *[item.model_dump(exclude_none=True) for item in first.output],
               {"type": "function_call_output", "call_id": "call_state_1", "output": "sunny"}])

    assert second.output_text == "Sunny."
    messages = fake_provider.requests[-1].body["messages"]
    assert messages[1]["content"] == "Checking."
    assert messages[1]["tool_calls"][0]["id"] == "call_state_1"
    assert messages[2] == {"role": "tool", "tool_call_id": "call_state_1", "content": "sunny"}


def test_streamed_function_call(openai_client, tools_model, fake_provider):
    fake_provider.enqueue(Behavior(text="", tool_call=ToolCall(id="call_stream_1")))

    with openai_client.responses.stream(model="resp-tools", tools=[WEATHER_TOOL],
                                        tool_choice={"type": "function",
                                                     "name": "get_weather"},
                                        input=fresh("Weather in Paris?")) as stream:
        events = list(stream)
        final = stream.get_final_response()

    deltas = [e.delta for e in events if e.type == "response.function_call_arguments.delta"]
    assert len(deltas) == 2  # the fake sends the arguments in two pieces
    done = next(e for e in events if e.type == "response.function_call_arguments.done")
    assert json.loads(done.arguments) == {"city": "Paris"} == json.loads("".join(deltas))
    [call] = final.output
    assert call.type == "function_call" and call.call_id == "call_stream_1"
    assert fake_provider.requests[-1].body["tool_choice"] == {
        "type": "function", "function": {"name": "get_weather"}}


def test_retrieve_and_delete(openai_client):
    created = openai_client.responses.create(model="simulated-standard",
                                             input=fresh("Remember this answer"))

    retrieved = openai_client.responses.retrieve(created.id)
    assert retrieved.id == created.id and retrieved.output_text == created.output_text
    assert retrieved.usage.output_tokens == created.usage.output_tokens

    deleted = openai_client.responses.with_raw_response.delete(created.id)
    assert deleted.http_response.json() == {"id": created.id, "object": "response",
                                            "deleted": True}
    with pytest.raises(openai.NotFoundError):
        openai_client.responses.retrieve(created.id)
    with pytest.raises(openai.NotFoundError):
        openai_client.responses.delete(created.id)


def test_store_false_keeps_nothing(openai_client):
    created = openai_client.responses.create(model="simulated-standard", store=False,
                                             input=fresh("Forget this"))
    assert created.store is False
    with pytest.raises(openai.NotFoundError):
        openai_client.responses.retrieve(created.id)


def test_another_teams_response_is_not_found(openai_client, live_gateway, make_api_key):
    created = openai_client.responses.create(model="simulated-standard",
                                             input=fresh("Team A's secret"))
    other = openai.OpenAI(base_url=live_gateway.api_base, max_retries=0, timeout=30,
                          api_key=make_api_key(team="team-b", user="bob").key)

    with pytest.raises(openai.NotFoundError) as retrieved:
        other.responses.retrieve(created.id)
    assert retrieved.value.body["code"] == "response_not_found"
    with pytest.raises(openai.NotFoundError):
        other.responses.delete(created.id)
    with pytest.raises(openai.BadRequestError) as continued:
        other.responses.create(model="simulated-standard", input="And then?",
                               previous_response_id=created.id)
    assert continued.value.body["code"] == "previous_response_not_found"
    assert continued.value.body["param"] == "previous_response_id"
    assert openai_client.responses.retrieve(created.id).id == created.id  # still there


def test_a_repeat_is_a_cache_hit_with_a_ledger_row(openai_client, settings):
    settings.ENABLE_SEMANTIC_CACHE = True
    question = fresh("What is the tallest mountain on Earth?")
    first = openai_client.responses.create(model="simulated-standard", input=question)
    # The cache stores answers off the request path: ask again until the answer comes from it.
    for _ in range(50):
        raw = openai_client.responses.with_raw_response.create(model="simulated-standard",
                                                               input=question)
        if raw.headers["x-llmops-cache"].startswith("hit"):
            break
        time.sleep(0.1)
    repeat = raw.parse()

    assert raw.headers["x-llmops-cache"] == "hit_exact"
    assert repeat.output_text == first.output_text and repeat.id != first.id
    record = record_of(repeat)
    assert record.endpoint == "responses" and record.cache_status == "hit_exact"
    assert record.cost == 0 and record.cost_saved > 0
    # A cached answer streams as the Responses event stream too.
    with openai_client.responses.stream(model="simulated-standard", input=question) as stream:
        events = list(stream)
    assert events[-1].type == "response.completed"
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == (
        first.output_text)
    assert record_of(events[-1].response).cache_status == "hit_exact"


def test_cut_by_max_output_tokens_is_incomplete(openai_client, tools_model, fake_provider):
    fake_provider.enqueue(Behavior(words=40))
    response = openai_client.responses.create(model="resp-tools", max_output_tokens=5,
                                              input=fresh("Write a long essay"))
    assert response.status == "incomplete"
    assert response.incomplete_details.reason == "max_output_tokens"
    assert response.usage.output_tokens == 5
    assert fake_provider.requests[-1].body["max_tokens"] == 5


def test_json_schema_format_is_forwarded(openai_client, tools_model, fake_provider):
    fake_provider.enqueue(Behavior(text='{"city": "Paris"}'))
    schema = {"type": "object", "properties": {"city": {"type": "string"}}}
    response = openai_client.responses.create(
        model="resp-tools", input=fresh("Which city?"),
        text={"format": {"type": "json_schema", "name": "city", "schema": schema,
                         "strict": True}})
    assert json.loads(response.output_text) == {"city": "Paris"}
    assert fake_provider.requests[-1].body["response_format"] == {
        "type": "json_schema", "json_schema": {"name": "city", "schema": schema, "strict": True}}


def test_a_stream_that_breaks_ends_with_response_failed(gateway_http, fake_profile,
                                                        simulated_profiles):
    fake_profile("resp-cut", upstream="fake-cut-3")
    response = gateway_http.post("/v1/responses", json={
        "model": "resp-cut", "input": fresh("Tell me everything"), "stream": True})
    assert response.status_code == 200
    events = [json.loads(line[len("data: "):]) for line in response.text.splitlines()
              if line.startswith("data: ")]
    assert [e["type"] for e in events[-2:]] == ["error", "response.failed"]
    failed = events[-1]["response"]
    assert failed["status"] == "failed" and failed["error"]["code"] == "server_error"
    record = UsageRecord.objects.get(request_id=response.headers["x-request-id"])
    assert record.endpoint == "responses" and record.status == "upstream_error"


def test_budget_refusal_is_an_openai_error(openai_client, api_key):
    from decimal import Decimal

    from budgets.services import budget_set

    budget_set(scope="key", api_key=api_key.api_key, daily_limit=Decimal("0"))
    with pytest.raises(openai.APIStatusError) as refused:
        openai_client.responses.create(model="simulated-standard", input=fresh("Anything"))
    assert refused.value.status_code == 402
    assert refused.value.body["type"] == "insufficient_quota"
    assert refused.value.body["code"] == "budget_exceeded"


@pytest.mark.parametrize(("body", "param"), [
    ({"input": [{"type": "web_search_call", "id": "ws_1"}]}, "input[0].type"),
    ({"input": [{"role": "user", "content": [{"type": "input_image", "file_id": "f"}]}]},
     "input[0].content[0].image_url"),
    ({"input": "hi", "tools": [{"type": "web_search"}]}, "tools[0].type"),
    ({"input": "hi", "tool_choice": {"type": "file_search"}}, "tool_choice"),
    ({"input": "hi", "text": {"format": {"type": "json_schema", "name": "x"}}},
     "text.format.schema"),
    ({"input": "hi", "background": True}, "background"),
    ({"input": 42}, "input"),
    ({"input": "hi", "max_output_tokens": 0}, "max_output_tokens"),
])
def test_what_llmops_cannot_do_is_a_400(gateway_http, simulated_profiles, body, param):
    response = gateway_http.post("/v1/responses", json={"model": "simulated-standard", **body})
    assert_openai_error(response, 400, param=param)
    assert UsageRecord.objects.count() == 0


def test_unknown_ids_are_404_error_objects(gateway_http):
    for path in ("/v1/responses/resp_doesnotexist", "/v1/responses/not-an-id"):
        assert_openai_error(gateway_http.get(path), 404, code="response_not_found")
        assert_openai_error(gateway_http.delete(path), 404, code="response_not_found")


def test_unauthenticated_is_401(live_gateway):
    response = httpx.get(f"{live_gateway.api_base}/responses/resp_abc", timeout=30)
    assert_openai_error(response, 401)


@pytest.fixture
def priced_model(fake_profile, settings):
    """A profile priced like gpt-4o that takes tools and images (the reservation's prices)."""
    settings.ENABLE_SEMANTIC_CACHE = False  # every request must reach admission
    return fake_profile("resp-priced", upstream="gpt-4o", provider="openai",
                        api_key_env="RESP_FAKE_KEY", input_price_per_token="0.0000025",
                        output_price_per_token="0.00001", context_window=128000,
                        max_output_tokens=16384, supports_tools=True, supports_vision=True)


@pytest.fixture
def small_budget_client(live_gateway, make_api_key, monkeypatch):
    """A client whose key may spend one cent a day."""
    from decimal import Decimal

    from budgets.services import budget_set

    monkeypatch.setenv("RESP_FAKE_KEY", "sk-fake-key-for-responses-tests")
    issued = make_api_key(team="small-team", user="small-user")
    budget_set(scope="key", api_key=issued.api_key, daily_limit=Decimal("0.01"))
    return openai.OpenAI(base_url=live_gateway.api_base, api_key=issued.key, max_retries=0,
                         timeout=30)


def _flat(tool: dict) -> dict:
    """Return a chat tool definition in the Responses API's flat shape."""
    return {"type": "function", **tool["function"]}


def test_tools_count_in_the_reservation(small_budget_client, priced_model, fake_provider):
    question = fresh("Which operation fits?")
    small = small_budget_client.responses.create(model="resp-priced", input=question,
                                                 max_output_tokens=1, tools=[_flat(big_tool(0))])
    assert small.status in ("completed", "incomplete")  # one tool fits in a cent

    with pytest.raises(openai.APIStatusError) as refused:
        small_budget_client.responses.create(model="resp-priced", input=question,
                                             max_output_tokens=1,
                                             tools=[_flat(big_tool(i)) for i in range(20)])
    assert refused.value.status_code == 402 and refused.value.body["code"] == "budget_exceeded"
    assert len(fake_provider.requests) == 1  # the refused one never reached the provider


def test_images_count_in_the_reservation(small_budget_client, priced_model, fake_provider):
    def ask(images: int):
        content = [{"type": "input_text", "text": fresh("What do these show?")}]
        content += [{"type": "input_image", "image_url": png(2048, 2048), "detail": "high"}
                    for _ in range(images)]
        return small_budget_client.responses.create(
            model="resp-priced", max_output_tokens=1,
            input=[{"role": "user", "content": content}])

    assert ask(1).status in ("completed", "incomplete")
    sent = fake_provider.requests[-1].body["messages"][0]["content"][1]
    assert sent["type"] == "image_url" and sent["image_url"]["detail"] == "high"
    with pytest.raises(openai.APIStatusError) as refused:
        ask(20)  # ~20 x 765 tokens at $2.50 per million: more than a cent
    assert refused.value.status_code == 402
    assert len(fake_provider.requests) == 1


def test_a_stream_left_mid_way_is_charged_what_was_relayed(live_gateway, api_key,
                                                           tools_model, fake_provider, settings):
    from budgets.models import BudgetReservation
    from tests.toolkit.gateway_calls import caller_headers, wait_for_record

    settings.ENABLE_SEMANTIC_CACHE = False
    fake_provider.enqueue(Behavior(words=200, interval_ms=20))
    request_id = uuid.uuid4().hex
    with httpx.stream("POST", f"{live_gateway.api_base}/responses", timeout=30,
                      headers=caller_headers(api_key, request_id),
                      json={"model": "resp-tools", "input": fresh("Go on"), "stream": True,
                            "max_output_tokens": 300}) as response:
        assert response.status_code == 200
        deltas = 0
        for line in response.iter_lines():
            deltas += line == "event: response.output_text.delta"
            if deltas >= 5:
                break
    record = wait_for_record(request_id)
    assert record.endpoint == "responses" and record.status == "client_disconnected"
    assert record.prompt_tokens > 0 and 5 <= record.completion_tokens < 200
    assert UsageRecord.objects.count() == 1
    assert not BudgetReservation.objects.exists()
