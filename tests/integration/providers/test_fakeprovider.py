"""The fake provider itself: scripting, recording, routes, the invoice."""

import threading

import httpx
import pytest

from tests.toolkit.fakeprovider import (
    Behavior,
    InvoiceLine,
    ToolCall,
    behavior_for_model,
    key_fingerprint,
)


class TestModelRules:
    @pytest.mark.parametrize(("model", "expected"), [
        ("gpt-4o", Behavior()),
        ("fake", Behavior()),
        ("fake-error-500", Behavior(status=500)),
        ("fake-error-429", Behavior(status=429, retry_after="1")),
        ("fake-error-429-ra-7", Behavior(status=429, retry_after="7")),
        ("fake-slow-200-pace-10-cut-3", Behavior(delay_ms=200, interval_ms=10, cut_after=3)),
        ("fake-stall-2", Behavior(stall_after=2)),
        ("fake-nousage-malformed", Behavior(usage=False, malformed=True)),
        ("fake-tool-cached-5-reasoning-9-words-3",
         Behavior(tool_call=ToolCall(), cached_tokens=5, reasoning_tokens=9, words=3)),
        ("fake-missing-drop", Behavior(missing_fields=True, drop=True)),
        ("fake-lie-huge-words-3-anything", Behavior(lie="huge", words=3)),
        ("fake-error-401-echokey", Behavior(status=401, echo_key=True)),
    ])
    def test_rules(self, model, expected):
        assert behavior_for_model(model) == expected

    def test_unknown_lie_is_refused(self):
        with pytest.raises(ValueError, match="unknown lie"):
            Behavior(lie="sometimes")


class TestServer:
    def test_queue_first_then_model_rules_and_recording(self, fake_provider):
        fake_provider.enqueue(Behavior(status=503))
        url = f"{fake_provider.base_url}/chat/completions"
        body = {"model": "fake-error-418", "messages": [{"role": "user", "content": "x"}]}
        with httpx.Client() as client:
            first = client.post(url, json=body, headers={"Authorization": "Bearer k1"})
            second = client.post(url, json=body)
            third = client.post(url, json={**body, "model": "m"})
        assert [first.status_code, second.status_code, third.status_code] == [503, 418, 200]
        assert first.json()["error"]["message"]
        recorded = fake_provider.wait_for_requests(3)
        assert recorded[0].headers["authorization"] == f"Bearer {key_fingerprint('k1')}"
        assert recorded[0].sent_key("k1") and not recorded[1].sent_key("k1")
        assert recorded[2].body["model"] == "m"
        assert third.json()["usage"]["total_tokens"] > 0

    def test_rules_from_a_header_for_a_real_model_name(self, fake_provider):
        response = httpx.post(f"{fake_provider.base_url}/chat/completions",
                              headers={"X-Fake-Behavior": "error-503"},
                              json={"model": "gpt-4o", "messages": []})
        assert response.status_code == 503
        assert fake_provider.last_request.behavior == Behavior(status=503)

    def test_unknown_route_and_bad_body(self, fake_provider):
        with httpx.Client() as client:
            assert client.get(f"{fake_provider.base_url}/models").status_code == 404
            assert client.post(f"{fake_provider.base_url}/messages",
                               content=b"nope").status_code == 400

    def test_concurrent_clients_from_threads(self, fake_provider):
        statuses = []

        def worker():
            with httpx.Client() as client:
                for _ in range(5):
                    statuses.append(client.post(
                        f"{fake_provider.base_url}/messages",
                        json={"model": "fake-slow-20", "max_tokens": 5,
                              "messages": [{"role": "user", "content": "hi"}]}).status_code)

        threads = [threading.Thread(target=worker) for _ in range(20)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert statuses == [200] * 100

    def test_an_echoing_error_quotes_the_key_in_either_wire_format(self, fake_provider):
        with httpx.Client(timeout=10) as client:
            openai = client.post(f"{fake_provider.base_url}/chat/completions",
                                 headers={"Authorization": "Bearer sk-quoted"},
                                 json={"model": "fake-error-401-echokey", "messages": []})
            anthropic = client.post(f"{fake_provider.base_url}/messages",
                                    headers={"x-api-key": "sk-quoted"},
                                    json={"model": "fake-error-401-echokey", "max_tokens": 5,
                                          "messages": []})
        assert (openai.status_code, anthropic.status_code) == (401, 401)
        assert openai.json()["error"]["param"] == "sk-quoted"
        assert "sk-quoted" in openai.json()["error"]["message"]
        assert anthropic.json()["error"]["type"] == "authentication_error"
        assert "sk-quoted" in anthropic.json()["error"]["message"]
        # What the fake records stays redacted.
        assert all("sk-quoted" not in str(r.headers) for r in fake_provider.requests)

    def test_wait_for_requests_times_out(self, fake_provider):
        with pytest.raises(TimeoutError):
            fake_provider.wait_for_requests(1, timeout=0.05)


def _chat(server, model: str, *, request_id: str = "", stream: bool = False, **body) -> dict:
    headers = {"X-Request-ID": request_id} if request_id else {}
    response = httpx.post(f"{server.base_url}/chat/completions", headers=headers, timeout=10,
                          json={"model": model, "stream": stream,
                                "stream_options": {"include_usage": True},
                                "messages": [{"role": "user", "content": "one two three"}],
                                **body})
    assert response.status_code == 200
    if not stream:
        return response.json()["usage"]
    import json

    events = [json.loads(line[6:]) for line in response.text.splitlines()
              if line.startswith("data: {")]
    return events[-1]["usage"]


def _wait_for_line(server, request_id: str) -> InvoiceLine:
    server.wait_until_idle(timeout=5)
    return server.invoice[request_id]


class TestInvoice:
    @pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream"])
    def test_reported_usage_is_what_is_billed(self, fake_provider, stream):
        usage = _chat(fake_provider, "fake-words-5", request_id="r-1", stream=stream)
        assert fake_provider.invoice == {"r-1": InvoiceLine(
            model="fake-words-5", prompt_tokens=usage["prompt_tokens"],
            completion_tokens=usage["completion_tokens"], cut=False, calls=1)}
        assert (usage["prompt_tokens"], usage["completion_tokens"]) == (10, 5)

    def test_calls_of_one_request_id_add_up(self, fake_provider):
        for _ in range(2):
            _chat(fake_provider, "fake-words-5", request_id="retried")
        _chat(fake_provider, "fake-words-5")  # no request id: billed under the provider's own
        line = fake_provider.invoice["retried"]
        assert (line.calls, line.prompt_tokens, line.completion_tokens) == (2, 20, 10)
        assert len(fake_provider.invoice) == 2

    def test_error_answers_and_dropped_calls_are_not_billed(self, fake_provider):
        for model in ("fake-error-500", "fake-error-429"):
            response = httpx.post(f"{fake_provider.base_url}/chat/completions",
                                  headers={"X-Request-ID": model}, timeout=10,
                                  json={"model": model, "messages": []})
            assert response.status_code >= 400
        with pytest.raises(httpx.HTTPError):
            httpx.post(f"{fake_provider.base_url}/chat/completions", timeout=10,
                       headers={"X-Request-ID": "dropped"},
                       json={"model": "fake-drop", "messages": []})
        assert fake_provider.invoice == {}

    @pytest.mark.parametrize(("lie", "reported"), [
        ("negative", (-10, -5)), ("float", (10.5, 5.5)), ("huge", (10**12, 10**12)),
        ("under", (1, 0)),
    ])
    @pytest.mark.parametrize("wire", ["openai", "anthropic"])
    def test_lies_are_reported_and_the_truth_billed(self, fake_provider, lie, reported, wire):
        model = f"fake-lie-{lie}-words-5"
        if wire == "openai":
            usage = _chat(fake_provider, model, request_id="liar")
            assert (usage["prompt_tokens"], usage["completion_tokens"]) == reported
        else:
            response = httpx.post(f"{fake_provider.base_url}/messages", timeout=10,
                                  headers={"X-Request-ID": "liar"},
                                  json={"model": model, "max_tokens": 50, "messages": [
                                      {"role": "user", "content": "one two three"}]})
            usage = response.json()["usage"]
            assert (usage["input_tokens"], usage["output_tokens"]) == reported
        line = fake_provider.invoice["liar"]
        assert (line.prompt_tokens, line.completion_tokens, line.cut) == (10, 5, False)

    @pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream"])
    def test_missing_usage_is_still_billed(self, fake_provider, stream):
        body = _raw_chat(fake_provider, "fake-lie-missing-words-5", "quiet", stream=stream)
        assert '"usage": {' not in body
        line = fake_provider.invoice["quiet"]
        assert (line.prompt_tokens, line.completion_tokens) == (10, 5)

    @pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream"])
    def test_client_leaving_before_the_first_byte_pays_the_prompt(self, fake_provider, stream):
        with pytest.raises(httpx.ReadTimeout):
            _raw_chat(fake_provider, "fake-slow-300-words-5", "impatient", stream=stream,
                      timeout=0.05)
        line = _wait_for_line(fake_provider, "impatient")
        assert (line.prompt_tokens, line.completion_tokens, line.cut) == (10, 0, True)

    def test_client_leaving_mid_stream_pays_what_was_sent(self, fake_provider):
        with httpx.stream("POST", f"{fake_provider.base_url}/chat/completions", timeout=10,
                          headers={"X-Request-ID": "half"},
                          json={"model": "fake-pace-20-words-40", "stream": True,
                                "messages": [{"role": "user", "content": "one two three"}]}
                          ) as response:
            received = 0
            for line in response.iter_lines():
                received += '"content": "' in line and '"content": ""' not in line
                if received == 5:
                    break
        line = _wait_for_line(fake_provider, "half")
        # The provider notices at its next chunk: what it sent meanwhile is still billed.
        assert line.cut and 5 <= line.completion_tokens <= 10
        assert line.prompt_tokens == 10

    def test_a_cut_by_the_behaviour_is_billed_as_sent(self, fake_provider):
        with pytest.raises(httpx.HTTPError):
            _raw_chat(fake_provider, "fake-cut-3-words-8", "cut", stream=True)
        line = _wait_for_line(fake_provider, "cut")
        assert (line.completion_tokens, line.cut) == (3, True)

    def test_reset_forgets_the_invoice(self, fake_provider):
        _chat(fake_provider, "fake-words-5", request_id="r-1")
        fake_provider.reset()
        assert fake_provider.invoice == {}


def _raw_chat(server, model: str, request_id: str, *, stream: bool,
              timeout: float = 10) -> str:
    response = httpx.post(f"{server.base_url}/chat/completions", timeout=timeout,
                          headers={"X-Request-ID": request_id},
                          json={"model": model, "stream": stream,
                                "stream_options": {"include_usage": True},
                                "messages": [{"role": "user", "content": "one two three"}]})
    return response.text


class TestBillingMeter:
    def test_counts_as_a_provider_bills(self):
        from tests.toolkit.billing import billed_prompt_tokens, billed_text_tokens
        from tests.toolkit.fakeprovider import run_fake_provider

        tools = [{"type": "function", "function": {
            "name": "search", "description": "Search the catalogue " * 20,
            "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}}]
        body = {"model": "gpt-4o", "max_tokens": 12, "tools": tools,
                "messages": [{"role": "user", "content": "one two three"}]}
        with run_fake_provider(billing=True) as server:
            response = httpx.post(f"{server.base_url}/chat/completions", json=body,
                                  headers={"X-Request-ID": "metered",
                                           "X-Fake-Behavior": "words-40"})
            line = server.invoice["metered"]
        usage, text = response.json()["usage"], response.json()["choices"][0]["message"]["content"]
        without_tools = billed_prompt_tokens({**body, "tools": []}, model="gpt-4o")
        assert line.prompt_tokens == billed_prompt_tokens(body, model="gpt-4o") > without_tools + 60
        # max_tokens bounds the answer in billed tokens, not in words.
        assert line.completion_tokens == billed_text_tokens(text) <= 12
        assert response.json()["choices"][0]["finish_reason"] == "length"
        assert (usage["prompt_tokens"], usage["completion_tokens"]) == (
            line.prompt_tokens, line.completion_tokens)
