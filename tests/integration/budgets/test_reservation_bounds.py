"""Through the live gateway, the reservation bounds what the provider bills: tools included.

Twenty tool definitions of ~1.8k tokens each are ~36k billed prompt tokens; counting only the
messages reserved a few hundredths of a cent for such a request while the provider charged
dollars over forty of them. The provider here reports the honest count of
`tests.toolkit.billing`, so the charge is what a real provider would bill.
"""

import base64
import json
import struct
import zlib
from decimal import Decimal

import httpx
import pytest

from budgets.models import UsageRecord
from budgets.services import budget_set
from tests.toolkit.assertions import assert_openai_error
from tests.toolkit.billing import billed_prompt_tokens, billed_text_tokens
from tests.toolkit.fakeprovider import Behavior

UPSTREAM = "gpt-4o"


def big_tool(index: int) -> dict:
    """A tool whose definition is ~1.8k tokens (many documented parameters)."""
    properties = {
        f"field_{index}_{n}": {
            "type": "string",
            "description": f"Parameter {n} of operation {index}: " + "the value to use " * 9,
            "enum": [f"option_{n}_{k}" for k in range(4)],
        }
        for n in range(24)
    }
    return {"type": "function", "function": {
        "name": f"operation_{index}", "description": "Run one back-office operation. " * 8,
        "parameters": {"type": "object", "properties": properties, "required": ["field_0_0"]}}}


def png(width: int, height: int) -> str:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    raw = (b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + ihdr
           + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr)))
    return "data:image/png;base64," + base64.b64encode(raw).decode()


@pytest.fixture
def profile(fake_profile, settings, monkeypatch):
    settings.ENABLE_SEMANTIC_CACHE = False  # every request must reach the provider
    monkeypatch.setenv("RESERVATION_FAKE_KEY", "sk-fake-key-for-reservation-tests")
    # gpt-4o's prices: $2.50 per million prompt tokens, $10 per million completion tokens.
    return fake_profile("tools-model", provider="openai", upstream=UPSTREAM,
                        api_key_env="RESERVATION_FAKE_KEY",
                        input_price_per_token="0.0000025", output_price_per_token="0.00001",
                        context_window=128000, max_output_tokens=16384, supports_tools=True,
                        supports_json_mode=True, supports_vision=True)


def _post(live_gateway, key: str, body: dict) -> httpx.Response:
    return httpx.post(f"{live_gateway.url}/v1/chat/completions", json=body, timeout=30,
                      headers={"Authorization": f"Bearer {key}"})


def test_twenty_large_tools_are_refused_by_a_tiny_daily_limit(live_gateway, make_api_key,
                                                              profile, fake_provider):
    issued = make_api_key(team="tools-team", user="tools-user")
    budget_set(scope="key", api_key=issued.api_key, daily_limit=Decimal("0.01"))
    tools = [big_tool(i) for i in range(20)]
    body = {"model": "tools-model", "max_tokens": 1, "tools": tools,
            "messages": [{"role": "user", "content": "Which operation fits?"}]}
    billed = billed_prompt_tokens(body, model=UPSTREAM, provider="openai")
    assert billed > 30_000  # what one such request really costs: ~$0.09 at $2.50 per million
    assert sum(billed_text_tokens(json.dumps(t)) for t in tools) > 20 * 1500

    response = _post(live_gateway, issued.key, body)

    assert_openai_error(response, 402)
    assert fake_provider.requests == []  # refused before any model was called


def test_a_request_that_fits_reserves_at_least_its_charge(live_gateway, make_api_key, profile,
                                                          fake_provider):
    issued = make_api_key(team="fits-team", user="fits-user")
    budget_set(scope="key", api_key=issued.api_key, daily_limit=Decimal("5"))
    body = {
        "model": "tools-model", "max_tokens": 1,
        "tools": [big_tool(i) for i in range(3)],
        "tool_choice": {"type": "function", "function": {"name": "operation_1"}},
        "response_format": {"type": "json_schema", "json_schema": {"name": "pick", "schema": {
            "type": "object", "properties": {"operation": {"type": "string"}}}}},
        "messages": [
            {"role": "system", "content": "Pick one operation. Réponds en français 🙂"},
            {"role": "user", "content": [
                {"type": "text", "text": "Which operation matches this screenshot?"},
                {"type": "image_url", "image_url": {"url": png(1920, 1080), "detail": "high"}}]},
        ],
    }
    billed = billed_prompt_tokens(body, model=UPSTREAM, provider="openai")
    answer = {"id": "chatcmpl-fits", "object": "chat.completion", "created": 0, "model": UPSTREAM,
              "choices": [{"index": 0, "finish_reason": "length",
                           "message": {"role": "assistant", "content": "{"}}],
              "usage": {"prompt_tokens": billed, "completion_tokens": 1,
                        "total_tokens": billed + 1}}
    fake_provider.enqueue(Behavior(replay=json.dumps(answer)))

    response = _post(live_gateway, issued.key, body)

    assert response.status_code == 200, response.text
    sent = fake_provider.requests[-1].body
    assert sent["tools"] == body["tools"] and sent["response_format"] == body["response_format"]
    record = UsageRecord.objects.get(request_id=response.headers["x-request-id"])
    assert record.prompt_tokens == billed
    assert record.cost == Decimal(billed) * Decimal("0.0000025") + Decimal("0.00001")
    assert record.estimated_cost >= record.cost
    assert record.estimated_prompt_tokens >= billed
