"""PostgreSQL unavailable: a gateway process reaches the database through a TCP proxy we cut.

Expected: 503 with a clear error object and no upstream call (never an unmetered call); service
resumes by itself when the database is back. The shared PostgreSQL is never stopped.
"""

import threading
import time
import uuid

import httpx
import pytest

from budgets.models import UsageRecord
from tests.toolkit.assertions import assert_openai_error
from tests.toolkit.fakeprovider import Behavior
from tests.toolkit.fixtures import assert_books_straight, unique_prompt
from tests.toolkit.gateway_process import GatewayProcess, gateway_database_url, is_postgres
from tests.toolkit.proxy import TcpProxy

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def proxied_gateway(fault_profiles, team_budget):
    if not is_postgres():
        pytest.skip("needs PostgreSQL (DATABASE_URL): SQLite is a file, there is no link to cut")
    from django.conf import settings

    db = settings.DATABASES["default"]
    with TcpProxy(db.get("HOST") or "127.0.0.1", int(db.get("PORT") or 5432)) as proxy:
        url = gateway_database_url(host="127.0.0.1", port=proxy.port)
        env = {"GATEWAY_DB_THREADS": "4", "CONN_MAX_AGE": "0"}
        with GatewayProcess(database_url=url, env=env) as gateway:
            yield gateway, proxy


def _chat(gateway, key: str, request_id: str | None = None, **body) -> httpx.Response:
    payload = {"model": "fault-alone", "messages": unique_prompt("db down"), "max_tokens": 16,
               **body}
    headers = {"Authorization": f"Bearer {key}"}
    if request_id:
        headers["X-Request-ID"] = request_id
    return httpx.post(f"{gateway.url}/v1/chat/completions", json=payload, headers=headers,
                      timeout=30)


def _until_served(gateway, key: str, attempts: int = 50) -> httpx.Response:
    for _ in range(attempts):
        response = _chat(gateway, key)
        if response.status_code == 200:
            return response
        time.sleep(0.1)
    pytest.fail(f"service did not resume: {response.status_code} {response.text[:300]}")


def test_database_down_is_503_without_an_upstream_call_and_recovers(proxied_gateway, api_key,
                                                                     fake_provider):
    gateway, proxy = proxied_gateway
    assert _chat(gateway, api_key.key).status_code == 200
    assert len(fake_provider.requests) == 1
    assert proxy.connections >= 1, "the gateway reached PostgreSQL through the proxy"

    proxy.cut()
    for stream in (False, True):
        response = _chat(gateway, api_key.key, stream=stream)
        error = assert_openai_error(response, 503)
        assert error["type"] == "api_error"
        assert "database" in error["message"].lower()
    assert len(fake_provider.requests) == 1, "no model was called while the ledger was away"
    ready = httpx.get(f"{gateway.url}/readyz", timeout=10)
    assert ready.status_code == 503 and ready.json()["checks"]["database"] != "ok"
    assert httpx.get(f"{gateway.url}/healthz", timeout=10).status_code == 200

    proxy.restore()
    _until_served(gateway, api_key.key)
    assert httpx.get(f"{gateway.url}/readyz", timeout=10).status_code == 200
    # Two admitted requests, two ledger rows; the refused ones left nothing behind.
    assert UsageRecord.objects.count() == 2
    assert len(fake_provider.requests) == 2
    assert_books_straight()
    assert "Traceback" not in gateway.output()


def test_database_lost_mid_request_still_records_the_call(proxied_gateway, api_key,
                                                          fake_provider):
    """The database goes away after admission, while the model answers, and comes back a
    few seconds later: the call already happened, so its ledger row must not be lost."""
    gateway, proxy = proxied_gateway
    assert _chat(gateway, api_key.key).status_code == 200
    fake_provider.enqueue(Behavior(delay_ms=1500))
    request_id = uuid.uuid4().hex
    result: dict = {}
    worker = threading.Thread(target=lambda: result.update(
        response=_chat(gateway, api_key.key, request_id=request_id)))
    worker.start()
    fake_provider.wait_for_requests(2, timeout=20)  # admitted: the model is answering
    proxy.cut()
    time.sleep(2.5)  # the answer arrives and settlement runs while the database is away
    proxy.restore()
    worker.join(timeout=30)
    assert not worker.is_alive()
    response = result["response"]
    assert response.status_code in (200, 503), response.text
    _until_served(gateway, api_key.key)
    # Settlement that failed during the outage is retried in the background until it lands.
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not UsageRecord.objects.filter(
            request_id=request_id).exists():
        time.sleep(0.25)
    rows = UsageRecord.objects.filter(request_id=request_id)
    assert rows.count() == 1, (
        "the upstream call made while the database was away has no ledger row "
        f"(client saw {response.status_code})")
    assert_books_straight()
