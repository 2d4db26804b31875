"""API keys: hashed at rest, compared in constant time, revoked and expired at once, rate-limited
per key in a cache shared by processes, never logged in full; provider keys never echoed."""

import hmac
import json
import logging
import uuid
from datetime import timedelta

import httpx
import pytest
from django.db import connection
from django.utils import timezone

from budgets.models import UsageRecord
from llmops import keys
from llmops.logging import JsonFormatter
from llmops.models import ApiKey
from llmops.services import api_key_revoke
from tests.toolkit.assertions import assert_openai_error
from tests.toolkit.fixtures import require_redis
from tests.toolkit.gateway_process import GatewayProcess, gateway_database_url

CHAT = {"model": "simulated-efficient", "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 8}


def _chat(gateway_url: str, key: str) -> httpx.Response:
    return httpx.post(f"{gateway_url}/v1/chat/completions", json=CHAT, timeout=30,
                      headers={"Authorization": f"Bearer {key}"})


# --- at rest ---------------------------------------------------------------------------------

@pytest.mark.django_db
def test_keys_are_stored_hashed_with_their_algorithm(make_api_key):
    issued = make_api_key()
    prefix, secret = keys.split_key(issued.key)
    row = ApiKey.objects.get(pk=issued.api_key.pk)
    assert row.prefix == prefix
    assert row.hashed_secret.startswith("sha256$")
    assert secret not in row.hashed_secret and issued.key not in row.hashed_secret
    # Not anywhere else in the key's row either, nor in its masked display form.
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {ApiKey._meta.db_table} WHERE id = %s", [row.pk])
        values = [str(v) for v in cursor.fetchone()]
    assert not any(secret in v for v in values)
    assert secret not in row.masked and secret not in str(row)


@pytest.mark.django_db
def test_secrets_are_compared_in_constant_time(make_api_key, monkeypatch):
    from llmops.selectors import api_key_from_bearer

    calls = []
    real = hmac.compare_digest

    def spy(a, b):
        calls.append((len(a), len(b)))
        return real(a, b)

    monkeypatch.setattr(keys.hmac, "compare_digest", spy)
    issued = make_api_key()
    prefix, secret = keys.split_key(issued.key)
    assert api_key_from_bearer(raw_key=issued.key) is not None
    assert api_key_from_bearer(raw_key=f"llmops-{prefix}.{secret[:-1]}X") is None
    # An unknown prefix is verified against a dummy hash: same work, nothing learnt from timing.
    assert api_key_from_bearer(raw_key=f"llmops-{'0' * 12}.{secret}") is None
    assert api_key_from_bearer(raw_key="not-even-ours") is None
    assert len(calls) == 4, "every presented key goes through one constant-time comparison"
    assert all(a == b for a, b in calls), "digests of equal length are compared"


# --- revocation and expiry, over HTTP ----------------------------------------------------------

def test_revocation_takes_effect_on_the_next_request(live_gateway, make_api_key,
                                                      simulated_profiles):
    issued = make_api_key(team="revoke-team", user="revoke-user")
    assert _chat(live_gateway.url, issued.key).status_code == 200
    api_key_revoke(api_key=issued.api_key)
    response = _chat(live_gateway.url, issued.key)
    assert_openai_error(response, 401, code="invalid_api_key")
    assert UsageRecord.objects.count() == 1


def test_expiry_takes_effect_on_the_next_request(live_gateway, make_api_key, simulated_profiles):
    issued = make_api_key(team="expire-team", user="expire-user",
                          expires_at=timezone.now() + timedelta(hours=1))
    assert _chat(live_gateway.url, issued.key).status_code == 200
    ApiKey.objects.filter(pk=issued.api_key.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1))
    assert_openai_error(_chat(live_gateway.url, issued.key), 401, code="invalid_api_key")
    # The model list and every other API path refuse it too.
    response = httpx.get(f"{live_gateway.api_base}/models", timeout=30,
                         headers={"Authorization": f"Bearer {issued.key}"})
    assert_openai_error(response, 401)


def test_deactivating_the_user_refuses_its_keys_from_the_next_request(
        live_gateway, make_api_key, simulated_profiles):
    """No key is cached between requests: the one query that authenticates reads the key with
    its user, so a key that just served a request is refused on the next one."""
    issued = make_api_key(team="inactive-team", user="inactive-user")
    other = make_api_key(team="inactive-team", user="still-active")
    assert _chat(live_gateway.url, issued.key).status_code == 200
    user = issued.api_key.user
    user.is_active = False
    user.save(update_fields=["is_active"])

    response = _chat(live_gateway.url, issued.key)
    assert_openai_error(response, 401, code="invalid_api_key")
    assert response.json()["error"]["type"] == "authentication_error"
    headers = {"Authorization": f"Bearer {issued.key}"}
    assert_openai_error(httpx.get(f"{live_gateway.api_base}/models", headers=headers,
                                  timeout=30), 401)
    assert_openai_error(httpx.post(f"{live_gateway.api_base}/feedback", headers=headers,
                                   json={"request_id": "x", "score": 1}, timeout=30), 401)
    # As an Anthropic-style SDK sends it, too.
    assert_openai_error(httpx.post(f"{live_gateway.api_base}/chat/completions", json=CHAT,
                                   headers={"x-api-key": issued.key}, timeout=30), 401)
    assert UsageRecord.objects.filter(api_key=issued.api_key).count() == 1
    # The team's other users are not affected; reactivation restores the key.
    assert _chat(live_gateway.url, other.key).status_code == 200
    user.is_active = True
    user.save(update_fields=["is_active"])
    assert _chat(live_gateway.url, issued.key).status_code == 200


def test_a_key_of_another_installation_with_a_known_prefix_is_refused(live_gateway, make_api_key,
                                                                      simulated_profiles):
    issued = make_api_key()
    prefix, _ = keys.split_key(issued.key)
    forged = f"llmops-{prefix}.{uuid.uuid4().hex}"
    assert_openai_error(_chat(live_gateway.url, forged), 401, code="invalid_api_key")


# --- rate limiting, shared across processes ------------------------------------------------------

@pytest.fixture
def shared_throttle_cache(settings, monkeypatch):
    """Django's cache on the shared Redis (DB 9) under a prefix of this test's own."""
    from llmops.api.throttling import ApiKeyRateThrottle

    prefix = f"reliab-throttle-{uuid.uuid4().hex[:8]}"
    settings.CACHES = {"default": {
        "BACKEND": "django_redis.cache.RedisCache", "LOCATION": "redis://127.0.0.1:6379/9",
        "KEY_PREFIX": prefix,
        "OPTIONS": {"CLIENT_CLASS": "django_redis.client.DefaultClient",
                    "SOCKET_CONNECT_TIMEOUT": 0.5, "SOCKET_TIMEOUT": 0.5},
    }}
    monkeypatch.setattr(ApiKeyRateThrottle, "rate", "4/min", raising=False)
    require_redis()
    # Never flush the shared Redis: the throttle's keys expire with their one-minute window.
    yield prefix


@pytest.mark.redis
def test_rate_limit_is_per_key_and_shared_by_processes(live_gateway, make_api_key,
                                                       simulated_profiles, shared_throttle_cache):
    limited = make_api_key(team="rl-team", user="rl-user")
    other = make_api_key(team="rl-team", user="rl-other")
    env = {"REDIS_URL": "redis://127.0.0.1:6379/9", "CACHE_KEY_PREFIX": shared_throttle_cache,
           "API_KEY_RATE_LIMIT": "4/min"}
    with GatewayProcess(database_url=gateway_database_url(), env=env) as second:
        # Two requests through this process, two through the other one: the limit is 4 in all.
        for url in (live_gateway.url, second.url, live_gateway.url, second.url):
            assert _chat(url, limited.key).status_code == 200
        for url in (live_gateway.url, second.url):
            response = _chat(url, limited.key)
            error = assert_openai_error(response, 429, code="rate_limit_exceeded")
            assert error["type"] == "rate_limit_error"
            assert int(response.headers["retry-after"]) >= 1
        # Another key of the same team and user is not affected.
        assert _chat(second.url, other.key).status_code == 200
        assert _chat(live_gateway.url, other.key).status_code == 200
        second_log = second.output()
    # Throttled requests were refused before admission: 4 + 2 ledger rows, none for the 429s.
    assert UsageRecord.objects.filter(api_key=limited.api_key).count() == 4
    _, secret = keys.split_key(limited.key)
    assert secret not in second_log


# --- never logged in full ----------------------------------------------------------------------

def _rendered(caplog) -> str:
    formatter = JsonFormatter()
    return "\n".join(formatter.format(record) for record in caplog.records)


def test_api_keys_never_reach_the_logs(live_gateway, make_api_key, simulated_profiles, caplog):
    issued = make_api_key(team="log-team", user="log-user")
    prefix, secret = keys.split_key(issued.key)
    caplog.set_level(logging.DEBUG)
    assert _chat(live_gateway.url, issued.key).status_code == 200
    _chat(live_gateway.url, f"llmops-{prefix}.{secret[::-1]}")  # wrong secret, right prefix
    api_key_revoke(api_key=issued.api_key)
    _chat(live_gateway.url, issued.key)
    bad = httpx.post(f"{live_gateway.api_base}/chat/completions", content=b"{not json",
                     headers={"Authorization": f"Bearer {issued.key}",
                              "Content-Type": "application/json"}, timeout=30)
    assert bad.status_code in (400, 401)
    text = _rendered(caplog)
    assert caplog.records, "the gateway logged its requests"
    assert secret not in text and secret[::-1] not in text
    assert issued.key not in text


def test_provider_keys_are_never_echoed_to_clients_or_logs(live_gateway, api_key, caplog,
                                                           monkeypatch, settings,
                                                           fake_provider):
    """A provider that quotes the key it refused: the client, the ledger and the logs never
    see it."""
    from routing.models import ModelProfile
    from routing.selectors import invalidate_snapshot

    provider_key = "sk-test-" + uuid.uuid4().hex + uuid.uuid4().hex
    monkeypatch.setenv("RELIAB_ECHO_PROVIDER_KEY", provider_key)
    settings.ENABLE_SEMANTIC_CACHE = False
    caplog.set_level(logging.DEBUG)
    ModelProfile.objects.create(
        name="echo-model", provider="openai_compatible", upstream_model="fake-error-401-echokey",
        base_url=fake_provider.base_url, api_key_env="RELIAB_ECHO_PROVIDER_KEY",
        input_price_per_token="0.000001", output_price_per_token="0.000001")
    invalidate_snapshot()
    for stream in (False, True):
        response = httpx.post(
            f"{live_gateway.api_base}/chat/completions", timeout=30,
            headers={"Authorization": f"Bearer {api_key.key}"},
            json={"model": "echo-model", "stream": stream,
                  "messages": [{"role": "user", "content": "hi"}]})
        assert_openai_error(response, (401, 502, 503))
        assert provider_key not in response.text
        assert provider_key[:24] not in response.text
        # The provider did quote the key it was sent: the gateway kept it to itself.
        assert fake_provider.last_request.sent_key(provider_key)
    invalidate_snapshot()
    rows = list(UsageRecord.objects.values())
    assert len(rows) == 2
    assert provider_key not in json.dumps(rows, default=str)
    assert provider_key not in _rendered(caplog)
