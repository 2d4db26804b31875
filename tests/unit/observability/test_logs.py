"""The request log line: one JSON object with the request's facts, never the API key."""

import json
import logging
from decimal import Decimal

from budgets.models import UsageRecord
from llmops.logging import JsonFormatter
from llmops.observability.logs import log_request
from llmops.principal import Principal


def test_one_json_line_with_request_id_principal_model_cache_cost_latency(caplog):
    record = UsageRecord(
        request_id="req-123", api_key_id=7, user_id=3, team_id=2, requested_model="auto",
        served_model="m-small", cache_status="miss", cost=Decimal("0.000123456789"),
        latency_ms=250, ttft_ms=40, upstream_latency_ms=200, status="ok",
    )
    principal = Principal(api_key_id=7, key_prefix="abc123", user_id=3, team_id=2,
                          team_name="acme", tier="standard")
    with caplog.at_level(logging.INFO, logger="llmops.request"):
        log_request(record, principal=principal)
    (entry,) = [r for r in caplog.records if r.name == "llmops.request"]
    line = json.loads(JsonFormatter().format(entry))
    assert line["request_id"] == "req-123"
    assert line["key_prefix"] == "abc123" and line["team"] == "acme" and line["user_id"] == 3
    assert line["model"] == "m-small" and line["cache_status"] == "miss"
    assert line["cost_usd"] == "0.000123456789"
    assert line["latency_ms"] == 250 and line["ttft_ms"] == 40
    assert "llmops-" not in json.dumps(line)


def test_failed_requests_log_at_warning(caplog):
    record = UsageRecord(request_id="req-err", requested_model="m", status="upstream_error",
                         error_kind="http_5xx", http_status=502)
    with caplog.at_level(logging.INFO, logger="llmops.request"):
        log_request(record)
    (entry,) = [r for r in caplog.records if r.name == "llmops.request"]
    assert entry.levelno == logging.WARNING and entry.key_prefix is None
