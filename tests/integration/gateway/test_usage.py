"""Upstreams that lie about usage, through the live gateway (llmops/gateway/usage.py): a report
that fails the checks is billed at the gateway's own count and counted; an honest one as it is."""

import json
import uuid

import httpx
import pytest

from budgets.models import BudgetReservation, UsageRecord
from tests.toolkit.assertions import metric_value
from tests.toolkit.fakeprovider import Behavior
from tests.toolkit.fixtures import no_semantic_cache, scrape_metrics  # noqa: F401
from tests.toolkit.gateway_calls import caller_headers, chat_body

pytestmark = pytest.mark.usefixtures("no_semantic_cache")


@pytest.mark.parametrize("usage, reason", [
    ({"prompt_tokens": -50, "completion_tokens": 8, "total_tokens": -42}, "negative"),
    ({"prompt_tokens": 10**12, "completion_tokens": 8, "total_tokens": 10**12}, "absurd"),
    ({"prompt_tokens": 12.5, "completion_tokens": 8, "total_tokens": 20.5}, "non_integer"),
    ({"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}, "under_reported"),
])
def test_hostile_usage_is_billed_at_the_gateway_count(live_gateway, api_key, fake_profile,
                                                      fake_provider, usage, reason):
    fake_profile("m-liar")
    body = {"id": "chatcmpl-liar", "object": "chat.completion", "created": 1, "model": "liar",
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": "one two three four"}}],
            "usage": usage}
    fake_provider.enqueue(Behavior(replay=json.dumps(body)))
    before = metric_value(scrape_metrics(), "llm_provider_usage_rejected_total",
                          model="m-liar", reason=reason)
    request_id = uuid.uuid4().hex
    response = httpx.post(f"{live_gateway.api_base}/chat/completions", json=chat_body("m-liar"),
                          headers=caller_headers(api_key, request_id), timeout=30)
    assert response.status_code == 200, response.text
    record = UsageRecord.objects.get(request_id=request_id)
    assert record.status == "ok"
    # The gateway's own count: the prompt's upper bound, the answer's text at most.
    assert record.prompt_tokens == record.estimated_prompt_tokens > 1
    assert 4 <= record.completion_tokens <= 8 and record.cost > 0
    assert response.json()["usage"]["prompt_tokens"] == record.prompt_tokens
    assert not BudgetReservation.objects.exists()
    after = metric_value(scrape_metrics(), "llm_provider_usage_rejected_total",
                         model="m-liar", reason=reason)
    assert after == before + 1


def test_an_honest_report_is_billed_as_reported(live_gateway, api_key, fake_profile,
                                                fake_provider):
    """Tokenizers differ: a report well below our upper bound but above what the text alone
    must cost is the provider's to make, and is billed as reported."""
    fake_profile("m-honest")
    prompt = chat_body("m-honest")
    body = {"id": "chatcmpl-honest", "object": "chat.completion", "created": 1, "model": "x",
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": "one two three four"}}],
            "usage": {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12}}
    fake_provider.enqueue(Behavior(replay=json.dumps(body)))
    request_id = uuid.uuid4().hex
    response = httpx.post(f"{live_gateway.api_base}/chat/completions", json=prompt,
                          headers=caller_headers(api_key, request_id), timeout=30)
    assert response.status_code == 200, response.text
    record = UsageRecord.objects.get(request_id=request_id)
    assert (record.prompt_tokens, record.completion_tokens) == (9, 3)
