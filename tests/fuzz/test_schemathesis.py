"""Schema-driven fuzzing (schemathesis) of every public API operation against a live gateway.

The OpenAPI schema is the one the gateway serves (/api/schema/). For each operation, schemathesis
generates schema-valid (positive) and schema-violating (negative) requests; every answer must be
below 500, and every 4xx the error object of that API (Anthropic's on /v1/messages, OpenAI's
elsewhere). Bounded and derandomized so
CI time is fixed: FUZZ_MAX_EXAMPLES per operation and mode (default 25).
"""

import os

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.generation.modes import GenerationMode

from tests.toolkit.assertions import assert_error_of_its_api

MAX_EXAMPLES = int(os.environ.get("FUZZ_MAX_EXAMPLES", "25"))
HYPOTHESIS = settings(
    max_examples=MAX_EXAMPLES, deadline=None, database=None, derandomize=True,
    phases=[Phase.explicit, Phase.generate],  # no shrinking: a failure is reported as sent
    suppress_health_check=list(HealthCheck),
)


@pytest.fixture
def api_schema(live_gateway):
    response = httpx.get(f"{live_gateway.url}/api/schema/", params={"format": "json"},
                         timeout=30)
    assert response.status_code == 200, "the OpenAPI schema is served without a key"
    return schemathesis.openapi.from_dict(response.json())


def _operations(schema) -> list:
    operations = [result.ok() for result in schema.get_all_operations()]
    return [op for op in operations if not op.path.startswith("/api/")]


def _check(case, response) -> str | None:
    """Return why `response` is wrong for `case`, or None."""
    where = f"{case.method} {case.path} -> {response.status_code}: {response.text[:300]!r}"
    if response.status_code >= 500:
        return f"server error: {where}"
    if response.status_code >= 400:
        try:
            assert_error_of_its_api(_as_httpx(response), case.path)
        except AssertionError as exc:
            return f"not the API's error object ({exc}): {where}"
    return None


def _as_httpx(response) -> httpx.Response:
    headers = [(name, value) for name, values in response.headers.items()
               for value in (values if isinstance(values, list) else [values])]
    return httpx.Response(response.status_code, headers=headers, content=response.content)


@pytest.mark.slow
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
                         ids=["positive", "negative"])
def test_every_operation_answers_without_5xx_and_with_its_apis_errors(
        api_schema, live_gateway, api_key, simulated_profiles, local_embedding_profile,
        settings, mode):
    settings.ENABLE_SEMANTIC_CACHE = False  # fuzzing exercises validation, routing and ledger
    auth = {"Authorization": f"Bearer {api_key.key}"}
    operations = _operations(api_schema)
    names = {f"{op.method.upper()} {op.path}" for op in operations}
    assert {"POST /v1/chat/completions", "GET /v1/models", "POST /v1/embeddings",
            "POST /v1/responses", "GET /v1/responses/{response_id}",
            "DELETE /v1/responses/{response_id}", "POST /v1/messages",
            "POST /v1/messages/count_tokens"} <= names, names
    problems: list[str] = []
    statuses: list[int] = []
    for operation in operations:
        @HYPOTHESIS
        @given(case=operation.as_strategy(generation_mode=mode))
        def run(case) -> None:
            response = case.call(base_url=live_gateway.url, headers=auth, timeout=30)
            statuses.append(response.status_code)
            problem = _check(case, response)
            if problem and len(problems) < 20:
                problems.append(f"{problem}\n  reproduce: {case.as_curl_command()}")

        run()
    assert not problems, "\n".join(problems)
    assert len(statuses) >= len(operations) * min(MAX_EXAMPLES, 5), len(statuses)
    if mode == GenerationMode.POSITIVE:
        assert any(status < 300 for status in statuses), sorted(set(statuses))


def test_unauthenticated_operations_answer_401_error_objects(api_schema, live_gateway):
    for operation in _operations(api_schema):
        response = httpx.request(operation.method.upper(), f"{live_gateway.url}{operation.path}",
                                 json={}, timeout=30)
        assert_error_of_its_api(response, operation.path, 401)


def test_probes_are_public_and_reveal_nothing(live_gateway):
    for path in ("/healthz", "/readyz"):
        response = httpx.get(f"{live_gateway.url}{path}", timeout=30)
        assert response.status_code in (200, 503)
        body = response.json()
        assert set(body) <= {"status", "checks", "cache_vector_search"}
        assert body.get("cache_vector_search", "redis") in ("redis", "process", "undecided")
        assert "postgres://" not in response.text and "redis://" not in response.text
