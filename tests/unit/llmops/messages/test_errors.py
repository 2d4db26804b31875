"""Anthropic's error shape (llmops/api/messages/errors.py)."""

import pytest

from llmops.api.messages.errors import anthropic_error_type, from_openai_error


@pytest.mark.parametrize(("status", "kind"), [
    (400, "invalid_request_error"), (401, "authentication_error"), (402, "billing_error"),
    (403, "permission_error"), (404, "not_found_error"), (405, "invalid_request_error"),
    (413, "request_too_large"), (415, "invalid_request_error"), (429, "rate_limit_error"),
    (500, "api_error"), (502, "api_error"), (503, "overloaded_error"), (504, "timeout_error"),
])
def test_types_by_status(status, kind):
    assert anthropic_error_type(status) == kind


def test_the_gateways_details_ride_along():
    body = from_openai_error(402, {"error": {
        "message": "Budget exceeded.", "type": "insufficient_quota", "code": "budget_exceeded",
        "param": None, "budget": "key daily"}}, request_id="r1")
    assert body == {"type": "error", "request_id": "r1", "error": {
        "type": "billing_error", "message": "Budget exceeded.",
        "llmops": {"code": "budget_exceeded", "budget": "key daily"}}}
