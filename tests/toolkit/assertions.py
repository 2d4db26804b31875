"""Assertions shared by the reliability, security and fuzz tests."""

import httpx


def _error_json(response: httpx.Response, status: int | tuple[int, ...] | None) -> object:
    """Assert `response` is a JSON error (with `status` if given); return its body."""
    statuses = (status,) if isinstance(status, int) else status
    if statuses is not None:
        assert response.status_code in statuses, (response.status_code, response.text[:500])
    assert response.status_code >= 400, response.text[:500]
    assert response.headers.get("content-type", "").startswith("application/json"), (
        response.headers.get("content-type"), response.text[:300])
    return response.json()


def assert_openai_error(response: httpx.Response, status: int | tuple[int, ...] | None = None,
                        *, code: str | None = None, param: str | None = None) -> dict:
    """Assert `response` is an OpenAI-style error object (with `status` if given); return it."""
    body = _error_json(response, status)
    assert isinstance(body, dict) and set(body) == {"error"}, body
    error = body["error"]
    assert {"message", "type", "code", "param"} <= set(error), error
    assert isinstance(error["message"], str) and error["message"], error
    assert isinstance(error["type"], str) and error["type"], error
    if code is not None:
        assert error["code"] == code, error
    if param is not None:
        assert error["param"] == param, error
    return error


def metric_value(text: str, name: str, **labels: str) -> float:
    """Return the sum of the samples of `name` in Prometheus text whose labels include `labels`."""
    from prometheus_client.parser import text_string_to_metric_families

    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name != name:
                continue
            if all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


# The error types Anthropic documents for its API.
ANTHROPIC_ERROR_TYPES = frozenset({
    "invalid_request_error", "authentication_error", "billing_error", "permission_error",
    "not_found_error", "request_too_large", "rate_limit_error", "api_error", "timeout_error",
    "overloaded_error"})


def assert_anthropic_error(response: httpx.Response,
                           status: int | tuple[int, ...] | None = None, *,
                           error_type: str | None = None) -> dict:
    """Assert `response` is Anthropic's error object (with `status` and `error_type` if given):
    `{"type": "error", "error": {"type", "message"}}`; return its `error`."""
    body = _error_json(response, status)
    assert isinstance(body, dict) and body.get("type") == "error", body
    assert set(body) <= {"type", "error", "request_id"}, body
    error = body["error"]
    assert isinstance(error["message"], str) and error["message"], error
    assert error["type"] in ANTHROPIC_ERROR_TYPES, error
    if error_type is not None:
        assert error["type"] == error_type, error
    return error


def assert_error_of_its_api(response: httpx.Response, path: str,
                            status: int | tuple[int, ...] | None = None) -> dict:
    """Assert `response` is the error object of the API `path` belongs to (Anthropic's on
    /v1/messages, OpenAI's elsewhere)."""
    if path.startswith("/v1/messages"):
        return assert_anthropic_error(response, status)
    return assert_openai_error(response, status)
