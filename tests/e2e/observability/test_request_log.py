"""One JSON log line per request through the live gateway, keyed by the client's X-Request-ID."""

import json
import logging

import httpx

from budgets.models import UsageRecord
from llmops.logging import JsonFormatter


def test_the_request_id_is_honoured_returned_and_logged(live_gateway, api_key,
                                                        simulated_profiles, caplog):
    with caplog.at_level(logging.INFO, logger="llmops.request"):
        response = httpx.post(
            f"{live_gateway.api_base}/chat/completions",
            headers={"Authorization": f"Bearer {api_key.key}", "X-Request-ID": "trace-42.a"},
            json={"model": "simulated-standard",
                  "messages": [{"role": "user", "content": "Log me once."}]},
            timeout=30,
        )
    assert response.status_code == 200
    assert response.headers["x-request-id"] == "trace-42.a"
    record = UsageRecord.objects.get(request_id="trace-42.a")

    lines = [json.loads(JsonFormatter().format(r)) for r in caplog.records
             if r.name == "llmops.request" and getattr(r, "request_id", None) == "trace-42.a"]
    assert len(lines) == 1
    (line,) = lines
    assert line["model"] == "simulated-standard" and line["cache_status"] == record.cache_status
    assert line["cost_usd"] == str(record.cost) and line["latency_ms"] == record.latency_ms
    assert line["user_id"] == api_key.api_key.user_id and line["team_id"] == api_key.api_key.team_id
    assert api_key.key not in json.dumps(line)
