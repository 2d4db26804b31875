"""Assertions shared by the reliability, security and fuzz tests."""

import httpx


def assert_openai_error(response: httpx.Response, status: int | tuple[int, ...] | None = None,
                        *, code: str | None = None, param: str | None = None) -> dict:
    """Assert `response` is an OpenAI-style error object (with `status` if given); return it."""
    statuses = (status,) if isinstance(status, int) else status
    if statuses is not None:
        assert response.status_code in statuses, (response.status_code, response.text[:500])
    assert response.status_code >= 400, response.text[:500]
    assert response.headers.get("content-type", "").startswith("application/json"), (
        response.headers.get("content-type"), response.text[:300])
    body = response.json()
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
