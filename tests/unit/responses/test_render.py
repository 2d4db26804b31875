"""Chat chunks become the Responses event stream and a response object (one code path)."""

from llmops.responses.render import ResponseEvents, ResponseShell, response_from_completion

USAGE = {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10,
         "prompt_tokens_details": {"cached_tokens": 2},
         "completion_tokens_details": {"reasoning_tokens": 1}, "cost": 0.5,
         "llmops": {"request_id": "r1"}}


def chunk(delta=None, finish=None, usage=None) -> dict:
    if usage is not None:
        return {"model": "m", "choices": [], "usage": usage}
    return {"model": "m", "choices": [{"delta": delta or {}, "finish_reason": finish}]}


def run(chunks: list[dict]) -> tuple[ResponseEvents, list[tuple[str, dict]]]:
    rendered = ResponseEvents(ResponseShell(request={"model": "auto", "input": "x"}), model="m")
    events = rendered.opening()
    for c in chunks:
        events += rendered.feed(c)
    if rendered.response is None:
        events += rendered.closing()
    return rendered, events


def test_text_stream_events_in_order_with_sequence_numbers():
    rendered, events = run([chunk({"role": "assistant", "content": ""}),
                            chunk({"content": "Hel"}), chunk({"content": "lo"}),
                            chunk({}, "stop"), chunk(usage=USAGE)])
    assert [name for name, _ in events] == [
        "response.created", "response.in_progress", "response.output_item.added",
        "response.content_part.added", "response.output_text.delta",
        "response.output_text.delta", "response.output_text.done",
        "response.content_part.done", "response.output_item.done", "response.completed"]
    assert [data["sequence_number"] for _, data in events] == list(range(len(events)))
    assert all(data["type"] == name for name, data in events)
    assert events[6][1]["text"] == "Hello"
    response = events[-1][1]["response"]
    assert response["status"] == "completed"
    assert response["output"][0]["content"][0]["text"] == "Hello"
    assert response["usage"] == {
        "input_tokens": 7, "input_tokens_details": {"cached_tokens": 2}, "output_tokens": 3,
        "output_tokens_details": {"reasoning_tokens": 1}, "total_tokens": 10, "cost": 0.5,
        "llmops": {"request_id": "r1"}}
    assert rendered.message == {"role": "assistant", "content": "Hello"}


def test_tool_call_fragments_become_a_function_call_item():
    rendered, events = run([
        chunk({"content": "Let me check."}),
        chunk({"tool_calls": [{"index": 0, "id": "c1", "type": "function",
                               "function": {"name": "f", "arguments": ""}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"a"'}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": ": 1}"}}]}),
        chunk({}, "tool_calls")])
    names = [name for name, _ in events]
    # The text item is done before the function call item is added.
    assert names.index("response.output_item.done") < names.index(
        "response.function_call_arguments.delta")
    done = dict(events)["response.function_call_arguments.done"]
    assert done["arguments"] == '{"a": 1}' and done["output_index"] == 1
    output = rendered.response["output"]
    assert [item["type"] for item in output] == ["message", "function_call"]
    assert output[1]["call_id"] == "c1" and output[1]["status"] == "completed"
    assert rendered.message == {"role": "assistant", "content": "Let me check.", "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}}]}


def test_cut_by_the_output_limit_is_incomplete():
    rendered, events = run([chunk({"content": "Once"}), chunk({}, "length")])
    assert events[-1][0] == "response.incomplete"
    assert rendered.response["status"] == "incomplete"
    assert rendered.response["incomplete_details"] == {"reason": "max_output_tokens"}
    assert rendered.response["output"][0]["status"] == "incomplete"


def test_a_broken_stream_fails_the_response():
    rendered, events = run([chunk({"content": "Once"}),
                            {"error": {"message": "broke", "type": "api_error",
                                       "code": "connection", "param": None}}])
    assert [name for name, _ in events[-2:]] == ["error", "response.failed"]
    assert events[-2][1]["code"] == "connection"
    failed = rendered.response
    assert failed["status"] == "failed" and failed["error"]["message"] == "broke"
    assert failed["output"][0]["status"] == "incomplete"


def test_an_empty_answer_is_an_empty_message():
    rendered, _ = run([chunk({}, "stop")])
    assert rendered.response["output"][0]["content"][0]["text"] == ""


def test_a_whole_completion_renders_as_its_stream_would():
    completion = {"model": "served", "usage": USAGE, "choices": [{
        "finish_reason": "tool_calls",
        "message": {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}}]}
    shell = ResponseShell(request={"model": "auto", "input": "x", "store": False,
                                   "tools": [{"type": "function", "name": "f"}]})
    rendered = response_from_completion(shell, completion)
    response = rendered.response
    assert response["id"] == shell.id and response["model"] == "served"
    assert response["store"] is False and response["tools"] == [{"type": "function",
                                                                 "name": "f"}]
    assert [item["type"] for item in response["output"]] == ["function_call"]
    assert response["usage"]["output_tokens"] == 3
