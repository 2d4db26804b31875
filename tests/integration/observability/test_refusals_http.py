"""Refusals through the live gateway: a 402 and a 429 each leave a log line, the metric, a
durable count and a report row, and no ledger row (nothing was admitted)."""

import io
import json
import logging
from decimal import Decimal

import httpx
import pytest
from django.core.management import call_command
from django.utils import timezone
from prometheus_client import REGISTRY

from budgets.models import Budget, BudgetCounter, UsageRecord
from llmops.logging import JsonFormatter
from llmops.models import RateLimitRefusal


def _chat(gateway, key: str) -> httpx.Response:
    return httpx.post(f"{gateway.api_base}/chat/completions",
                      headers={"Authorization": f"Bearer {key}"},
                      json={"model": "simulated-standard",
                            "messages": [{"role": "user", "content": "Hello there"}]},
                      timeout=30)


def _refused(reason: str, scope: str) -> float:
    return REGISTRY.get_sample_value("llm_requests_refused_total",
                                     {"reason": reason, "scope": scope}) or 0.0


def _lines(caplog, request_id: str) -> list[dict]:
    return [json.loads(JsonFormatter().format(r)) for r in caplog.records
            if r.name == "llmops.refusal" and getattr(r, "request_id", None) == request_id]


def test_a_budget_refusal_over_http(live_gateway, make_api_key, simulated_profiles, caplog):
    issued = make_api_key(team="acme", user="alice")
    budget = Budget.objects.create(scope="team", team=issued.api_key.team,
                                   daily_limit=Decimal("0.000001"))
    before = _refused("budget", "team")
    with caplog.at_level(logging.INFO, logger="llmops.refusal"):
        response = _chat(live_gateway, issued.key)
    assert response.status_code == 402
    request_id = response.headers["x-request-id"]

    (line,) = _lines(caplog, request_id)
    assert (line["reason"], line["scope"], line["period"]) == ("budget", "team", "day")
    assert line["team"] == "acme" and line["key_prefix"] == issued.api_key.prefix
    assert line["requested_model"] == "simulated-standard"
    assert Decimal(line["requested"]) > Decimal(line["remaining"]) == Decimal("0.000001")
    assert issued.key not in json.dumps(line)
    assert _refused("budget", "team") == before + 1

    counter = BudgetCounter.objects.get(budget=budget, period="day")
    assert counter.refused == 1 and counter.refused_amount == Decimal(line["requested"])
    out = io.StringIO()
    call_command("budget_report", "--period", "day", "--json", stdout=out)
    (row,) = [r for r in json.loads(out.getvalue())["rows"] if r["budget_id"] == budget.pk]
    assert row["refused"] == 1 and row["refused_amount"] == line["requested"]
    assert not UsageRecord.objects.filter(request_id=request_id).exists()


def test_a_rate_limit_refusal_over_http(live_gateway, make_api_key, simulated_profiles,
                                        settings, monkeypatch, caplog):
    from llmops.api.throttling import ApiKeyRateThrottle
    from llmops.observability import refusals

    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache",
                                   "LOCATION": "refusals-http"}}
    monkeypatch.setattr(ApiKeyRateThrottle, "rate", "1/min", raising=False)
    monkeypatch.setattr(refusals, "_tally", refusals._Tally())  # its first count is written
    issued = make_api_key(team="globex", user="bob")
    before = _refused("rate_limit", "api_key")
    assert _chat(live_gateway, issued.key).status_code == 200
    with caplog.at_level(logging.INFO, logger="llmops.refusal"):
        response = _chat(live_gateway, issued.key)
    assert response.status_code == 429 and int(response.headers["retry-after"]) >= 1
    request_id = response.headers["x-request-id"]

    (line,) = _lines(caplog, request_id)
    assert (line["reason"], line["scope"], line["period"]) == ("rate_limit", "api_key", "60s")
    assert (line["limit"], line["remaining"], line["requested"]) == ("1", "0", "1")
    assert line["team"] == "globex" and line["key_prefix"] == issued.api_key.prefix
    assert _refused("rate_limit", "api_key") == before + 1

    row = RateLimitRefusal.objects.get(api_key=issued.api_key)
    assert (row.day, row.refused) == (timezone.now().date(), 1)
    assert UsageRecord.objects.filter(api_key=issued.api_key).count() == 1  # the 200 only


@pytest.fixture(autouse=True)
def _fresh_caches():
    from django.core.cache import cache

    cache.clear()
