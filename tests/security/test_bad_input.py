"""Bad input to POST /v1/chat/completions, over real HTTP: each one a clear 4xx error object.

Every case also proves that nothing was admitted (no ledger row, no reservation) and that no
model was called: a refused request costs nobody anything.
"""

import json

import pytest

from budgets.models import BudgetReservation, UsageRecord
from tests.toolkit.assertions import assert_openai_error

GOOD = {"model": "simulated-efficient", "messages": [{"role": "user", "content": "hi"}]}


def _with(**changes) -> dict:
    body = json.loads(json.dumps(GOOD))
    for name, value in changes.items():
        if value is _DROP:
            body.pop(name, None)
        else:
            body[name] = value
    return body


_DROP = object()

# (id, body as dict/bytes, content type, expected status, expected param or None)
JSON_CASES = [
    ("missing-messages", _with(messages=_DROP), 400, "messages"),
    ("empty-messages", _with(messages=[]), 400, "messages"),
    ("messages-not-a-list", _with(messages="hello"), 400, "messages"),
    ("message-not-an-object", _with(messages=["hello"]), 400, None),
    ("unknown-role", _with(messages=[{"role": "wizard", "content": "hi"}]), 400, None),
    ("missing-role", _with(messages=[{"content": "hi"}]), 400, None),
    ("content-number", _with(messages=[{"role": "user", "content": 42}]), 400, None),
    ("content-object", _with(messages=[{"role": "user", "content": {"a": 1}}]), 400, None),
    ("content-bad-part", _with(messages=[{"role": "user", "content": [{"type": "x"}]}]), 400,
     None),
    ("user-without-content", _with(messages=[{"role": "user"}]), 400, None),
    ("missing-model", _with(model=_DROP), 400, "model"),
    ("model-not-a-string", _with(model=["auto"]), 400, "model"),
    ("max-tokens-negative", _with(max_tokens=-5), 400, "max_tokens"),
    ("max-tokens-zero", _with(max_tokens=0), 400, "max_tokens"),
    ("max-tokens-huge", _with(max_tokens=10**15), 400, "max_tokens"),
    ("max-tokens-string", _with(max_tokens="lots"), 400, "max_tokens"),
    ("max-completion-tokens-huge", _with(max_completion_tokens=10**9), 400,
     "max_completion_tokens"),
    ("temperature-high", _with(temperature=2.5), 400, "temperature"),
    ("temperature-negative", _with(temperature=-0.1), 400, "temperature"),
    ("temperature-nan-string", _with(temperature="NaN"), 400, "temperature"),
    ("top-p-high", _with(top_p=1.5), 400, "top_p"),
    ("n-3", _with(n=3), 400, "n"),
    ("stop-too-many", _with(stop=["a", "b", "c", "d", "e"]), 400, "stop"),
    ("stream-not-bool", _with(stream="sometimes"), 400, "stream"),
    ("metadata-not-object", _with(metadata=[1, 2]), 400, "metadata"),
    ("metadata-too-many-keys", _with(metadata={str(i): "v" for i in range(17)}), 400,
     "metadata"),
    ("body-array", [GOOD], 400, None),
    ("body-null", None, 400, None),
    ("body-string", "hello", 400, None),
]


@pytest.mark.parametrize("body,status,param",
                         [pytest.param(b, s, p, id=i) for i, b, s, p in JSON_CASES])
def test_invalid_json_bodies_are_400_error_objects(gateway_http, simulated_profiles, body,
                                                   status, param):
    response = gateway_http.post("/v1/chat/completions", content=json.dumps(body),
                                 headers={"Content-Type": "application/json"})
    assert_openai_error(response, status, param=param)
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert not UsageRecord.objects.exists()
    assert not BudgetReservation.objects.exists()


RAW_CASES = [
    ("invalid-json", b'{"model": "auto", "messages": [', "application/json", 400),
    ("trailing-garbage", json.dumps(GOOD).encode() + b"}}", "application/json", 400),
    ("empty-body", b"", "application/json", 400),
    ("whitespace-body", b"   \n", "application/json", 400),
    ("invalid-utf8", b'{"model": "auto", "messages": [{"role": "user", "content": "\xff\xfe"}]}',
     "application/json", 400),
    ("nan-literal", b'{"model": "auto", "temperature": NaN, "messages": []}',
     "application/json", 400),
    ("deep-nesting", b'{"model": "auto", "messages": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
     "application/json", 400),
    ("deep-nesting-objects", b'{"metadata": ' + b'{"a":' * 5000 + b"1" + b"}" * 5000 + b"}",
     "application/json", 400),
    ("text-plain", json.dumps(GOOD).encode(), "text/plain", 415),
    ("form-encoded", b"model=auto&messages=hi", "application/x-www-form-urlencoded", 415),
    ("multipart", b"--x\r\n\r\n--x--", "multipart/form-data; boundary=x", 415),
    ("no-content-type", json.dumps(GOOD).encode(), "", 415),
]


@pytest.mark.parametrize("raw,content_type,status",
                         [pytest.param(r, c, s, id=i) for i, r, c, s in RAW_CASES])
def test_unparseable_bodies_are_4xx_error_objects(gateway_http, simulated_profiles, raw,
                                                  content_type, status):
    headers = {"Content-Type": content_type} if content_type else {}
    response = gateway_http.post("/v1/chat/completions", content=raw, headers=headers)
    if not content_type and response.status_code == 400:
        # httpx sends no Content-Type; either refusal is clear, never a 500.
        status = 400
    assert_openai_error(response, status)
    assert not UsageRecord.objects.exists()


def test_ten_megabyte_body_is_413(gateway_http, simulated_profiles, settings):
    text = "x" * (10 * 1024 * 1024)
    body = json.dumps(_with(messages=[{"role": "user", "content": text}]))
    response = gateway_http.post("/v1/chat/completions", content=body,
                                 headers={"Content-Type": "application/json"})
    error = assert_openai_error(response, 413, code="payload_too_large")
    assert str(settings.LLMOPS_MAX_BODY_BYTES) in error["message"]
    assert not UsageRecord.objects.exists()


def test_lone_surrogate_is_400(gateway_http, simulated_profiles):
    raw = (b'{"model": "simulated-efficient", '
           b'"messages": [{"role": "user", "content": "a\\ud800b"}]}')
    response = gateway_http.post("/v1/chat/completions", content=raw,
                                 headers={"Content-Type": "application/json"})
    error = assert_openai_error(response, 400, param="messages[0].content")
    assert "surrogate" in error["message"]
    assert not UsageRecord.objects.exists()


BAD = "\x00bad"  # replaced by each bad escape below, in the JSON text itself
TOOL = {"type": "function", "function": {
    "name": "lookup", "description": "Look a word up.",
    "parameters": {"type": "object", "properties": {"word": {"type": "string"}}}}}
# (id, body with BAD where the bad text goes, the param that names it)
BAD_TEXT_CASES = [
    ("content", _with(messages=[{"role": "user", "content": f"a{BAD}b"}]), "messages[0].content"),
    ("content-part", _with(messages=[{"role": "user", "content": [
        {"type": "text", "text": "fine"}, {"type": "text", "text": BAD}]}]),
     "messages[0].content[1].text"),
    ("name", _with(messages=[{"role": "user", "content": "hi", "name": BAD}]), "messages[0].name"),
    ("stop", _with(stop=["ok", BAD]), "stop[1]"),
    ("tools-description", _with(tools=[TOOL, {**TOOL, "function": {
        **TOOL["function"], "description": BAD}}]), "tools[1].function.description"),
    ("tools-schema-key", _with(tools=[{**TOOL, "function": {**TOOL["function"], "parameters": {
        "type": "object", "properties": {BAD: {"type": "string"}}}}}]),
     "tools[0].function.parameters.properties"),
    ("tool-calls-arguments", _with(messages=[
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": None, "tool_calls": [{
            "id": "call_1", "type": "function",
            "function": {"name": "lookup", "arguments": f'{{"word": "{BAD}"}}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "a word"}]),
     "messages[1].tool_calls[0].function.arguments"),
    ("tool-choice", _with(tools=[TOOL], tool_choice={"type": "function",
                                                     "function": {"name": BAD}}),
     "tool_choice.function.name"),
    ("response-format", _with(response_format={"type": "json_schema", "json_schema": {
        "name": "answer", "schema": {"type": "object", "description": BAD}}}),
     "response_format.json_schema.schema.description"),
    ("logit-bias-key", _with(logit_bias={"50256": -100, BAD: 5}), "logit_bias"),
    ("metadata-value", _with(metadata={"note": BAD}), "metadata.note"),
    ("metadata-key", _with(metadata={BAD: "v"}), "metadata"),
    ("user", _with(user=BAD), "user"),
    ("unknown-field", _with(extra_field={"deep": [BAD]}), "extra_field.deep[0]"),
    ("model", _with(model=BAD), "model"),
    ("top-level-key", {**GOOD, BAD: 1}, None),
]
BAD_ESCAPES = {"lone-high": "\\ud800", "lone-low": "x\\udfff", "reversed-pair": "\\udc00\\ud800",
               "nul": "\\u0000", "nul-in-text": "a\\u0000b"}


@pytest.mark.parametrize("escape", list(BAD_ESCAPES.values()), ids=list(BAD_ESCAPES))
@pytest.mark.parametrize("body,param",
                         [pytest.param(b, p, id=i) for i, b, p in BAD_TEXT_CASES])
def test_bad_text_anywhere_in_the_body_is_400_naming_its_path(
        gateway_http, fake_profile, fake_provider, body, param, escape):
    """A lone surrogate or a NUL in any string of the body, key or value, known field or not, is
    refused before admission: it would otherwise fail (500) when the upstream body is encoded."""
    fake_profile("wire-model")
    if body["model"] == GOOD["model"]:
        body = {**body, "model": "wire-model"}
    raw = json.dumps(body).replace(json.dumps(BAD)[1:-1], escape).encode()
    assert escape.encode() in raw
    response = gateway_http.post("/v1/chat/completions", content=raw,
                                 headers={"Content-Type": "application/json"})
    error = assert_openai_error(response, 400, param=param, code="invalid_value")
    assert error["type"] == "invalid_request_error"
    assert ("NUL" if "0000" in escape else "surrogate") in error["message"]
    assert not UsageRecord.objects.exists()
    assert not BudgetReservation.objects.exists()
    assert fake_provider.requests == []


@pytest.mark.parametrize("text", ["emoji \\ud83e\\uddea pair", "C:\\\\ud800\\\\u0000 as text",
                                  "hangul \\ud55c\\uae00"])
def test_valid_escapes_that_look_alike_are_served(gateway_http, simulated_profiles, text):
    raw = (b'{"model": "simulated-efficient", "max_tokens": 4, "metadata": {"k": "'
           + text.encode() + b'"}, "messages": [{"role": "user", "content": "'
           + text.encode() + b'"}]}')
    response = gateway_http.post("/v1/chat/completions", content=raw,
                                 headers={"Content-Type": "application/json"})
    assert response.status_code == 200, response.text[:300]


def test_bad_text_in_feedback_is_400_too(gateway_http, simulated_profiles):
    raw = b'{"request_id": "r1", "score": 5, "comment": "nice\\u0000"}'
    response = gateway_http.post("/v1/feedback", content=raw,
                                 headers={"Content-Type": "application/json"})
    assert_openai_error(response, 400, param="comment", code="invalid_value")


def test_unknown_model_is_404_and_calls_nothing(gateway_http, simulated_profiles):
    response = gateway_http.post("/v1/chat/completions",
                                 json=_with(model="no-such-model-anywhere"))
    error = assert_openai_error(response, 404, code="model_not_found")
    assert error["type"] == "invalid_request_error"
    assert not UsageRecord.objects.exists()
    assert not BudgetReservation.objects.exists()


def test_disabled_model_is_404(gateway_http, simulated_profiles):
    simulated_profiles["simulated-premium"].enabled = False
    simulated_profiles["simulated-premium"].save()
    from routing.selectors import invalidate_snapshot

    invalidate_snapshot()
    response = gateway_http.post("/v1/chat/completions", json=_with(model="simulated-premium"))
    assert_openai_error(response, 404, code="model_not_found")


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH"])
def test_wrong_method_is_405_error_object(gateway_http, simulated_profiles, method):
    response = gateway_http.request(method, "/v1/chat/completions")
    assert_openai_error(response, 405)


def test_unknown_url_is_404_error_object(gateway_http):
    assert_openai_error(gateway_http.get("/v1/no-such-endpoint"), 404)
    assert_openai_error(gateway_http.post("/v1/completions", json=GOOD), 404)


@pytest.mark.parametrize("header", [
    None, "Bearer", "Basic dXNlcjpwYXNz", "Bearer a b", "Bearer llmops-",
    "Bearer llmops-abc", "Bearer llmops-abc.", "Bearer " + "x" * 10_000,
    "Bearer llmops-" + "a" * 100 + ".secret",
])
def test_bad_credentials_are_401_error_objects(live_gateway, simulated_profiles, header):
    import httpx

    headers = {"Authorization": header} if header is not None else {}
    response = httpx.post(f"{live_gateway.url}/v1/chat/completions", json=GOOD, headers=headers,
                          timeout=30)
    error = assert_openai_error(response, 401)
    assert error["type"] == "authentication_error"
    assert not UsageRecord.objects.exists()


def test_non_ascii_authorization_header_is_401(live_gateway, simulated_profiles):
    import httpx

    header = "Bearer llmops-\xe9\xe9.\xff".encode("latin-1")
    response = httpx.post(f"{live_gateway.url}/v1/chat/completions", json=GOOD, timeout=30,
                          headers={"Authorization": header})
    assert_openai_error(response, 401)


def test_good_request_still_works_after_the_matrix(gateway_http, simulated_profiles):
    """The control: the same body without the defect is served (so the 4xx above are real)."""
    response = gateway_http.post("/v1/chat/completions", json=GOOD)
    assert response.status_code == 200, response.text
    assert UsageRecord.objects.count() == 1


def test_oversized_content_length_is_refused_before_the_body_is_read(live_gateway, api_key,
                                                                     settings):
    import socket
    from urllib.parse import urlsplit

    host = urlsplit(live_gateway.url)
    announced = settings.LLMOPS_MAX_BODY_BYTES * 50
    head = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: {host.hostname}\r\n"
            f"Authorization: Bearer {api_key.key}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {announced}\r\n\r\n").encode()
    with socket.create_connection((host.hostname, host.port), timeout=10) as sock:
        sock.sendall(head + b'{"model": "auto", "messages": [')
        sock.settimeout(5)  # a hang detector, not a speed requirement
        try:
            answer = sock.recv(4096)
        except TimeoutError:
            answer = b""
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
