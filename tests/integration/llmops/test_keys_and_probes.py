"""API keys end to end through Django: issue, authenticate, revoke, expire; admin stays apart."""

import json
import re
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from llmops.models import ApiKey
from llmops.services import api_key_revoke

pytestmark = pytest.mark.django_db(transaction=True)


def _models(client, key: str):
    return client.get("/v1/models", HTTP_AUTHORIZATION=f"Bearer {key}")


def test_create_api_key_command_prints_json_once_and_stores_only_a_hash(client):
    out = StringIO()
    call_command("create_api_key", "--team", "acme", "--user", "alice", "--tier", "premium",
                 "--json", stdout=out)
    payload = json.loads(out.getvalue())
    assert set(payload) >= {"key", "prefix", "team", "user"}
    assert payload["team"] == "acme" and payload["user"] == "alice"
    row = ApiKey.objects.get(prefix=payload["prefix"])
    assert row.tier == "premium"
    assert payload["key"].split(".", 1)[1] not in row.hashed_secret
    assert _models(client, payload["key"]).status_code == 200


def test_create_api_key_plain_output_is_the_key(client):
    out = StringIO()
    call_command("create_api_key", "--team", "acme", "--user", "bob", stdout=out)
    key = out.getvalue().strip()
    assert key.startswith("llmops-")
    assert _models(client, key).status_code == 200


def test_revoked_and_expired_keys_stop_working_at_once(client, make_api_key):
    issued = make_api_key()
    assert _models(client, issued.key).status_code == 200
    api_key_revoke(api_key=issued.api_key)
    response = _models(client, issued.key)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"

    expiring = make_api_key(user="carol")
    ApiKey.objects.filter(pk=expiring.api_key.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1))
    assert _models(client, expiring.key).status_code == 401


def test_missing_and_malformed_credentials_are_401_error_objects(client):
    response = client.get("/v1/models")
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "authentication_error"
    response = client.get("/v1/models", HTTP_AUTHORIZATION="Basic abc")
    assert response.status_code == 401


def test_an_api_key_never_opens_admin(client, api_key):
    response = client.get("/admin/", HTTP_AUTHORIZATION=f"Bearer {api_key.key}")
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


def test_probes(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"]["database"] == "ok"


def test_openapi_schema_and_local_swagger_ui(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    assert "/v1/chat/completions" in paths and "/v1/models" in paths
    docs = client.get("/api/docs/")
    assert docs.status_code == 200
    html = docs.content.decode()
    assert "swagger" in html.lower()
    # Every asset is served by the gateway itself: no script, style or image from another host
    # (matched on the attributes, not the page text, which holds a random CSRF/nonce token).
    assets = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", html)
    assert assets and all(not re.match(r"(?:[a-z]+:)?//", url) for url in assets), assets
    assert "unpkg" not in html and "jsdelivr" not in html


def test_unknown_url_is_a_json_error(client):
    response = client.get("/v1/nope")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_an_unknown_url_under_the_messages_front_door_is_an_anthropic_error(client):
    response = client.get("/v1/messages/nope", headers={"X-Request-ID": "req-404"})
    assert response.status_code == 404
    body = response.json()
    assert body["type"] == "error" and body["error"]["type"] == "not_found_error"
    assert body["error"]["llmops"]["code"] == "not_found"
