"""The fake provider itself: scripting, recording, routes."""

import threading

import httpx
import pytest

from tests.fakeprovider import Behavior, ToolCall, behavior_for_model, key_fingerprint


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
    ])
    def test_rules(self, model, expected):
        assert behavior_for_model(model) == expected


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

    def test_wait_for_requests_times_out(self, fake_provider):
        with pytest.raises(TimeoutError):
            fake_provider.wait_for_requests(1, timeout=0.05)
