"""Admin, deployment and observability surfaces: staff only, CSRF on, secure cookies and HSTS
without DEBUG, `check --deploy` clean in production, /metrics and the dashboard not public."""

import json
import os
import secrets
import subprocess
import sys

import httpx
import pytest
from django.contrib.auth import get_user_model
from django.test import Client, RequestFactory

from tests.toolkit.gateway_process import ROOT, GatewayProcess, gateway_database_url

PRODUCTION_ENV = {
    "DJANGO_SETTINGS_MODULE": "llmops.settings.base",
    "DEBUG": "false",
    "SECRET_KEY": secrets.token_urlsafe(50),
    "ALLOWED_HOSTS": "llmops.example.com",
    # TLS terminates at the proxy, which also redirects; the gateway insists as well.
    "SECURE_SSL_REDIRECT": "true",
    "SECURE_HSTS_PRELOAD": "true",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
}


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith(("DJANGO_", "SECURE_", "DEBUG", "SECRET_KEY", "ALLOWED_HOSTS",
                                  "METRICS_", "SESSION_", "CSRF_"))}
    return subprocess.run([sys.executable, *args], cwd=ROOT, env={**clean, **env},
                          capture_output=True, text=True, timeout=120)


def _settings_in(env: dict[str, str]) -> dict:
    code = ("import django, json; django.setup(); from django.conf import settings as s; "
            "print(json.dumps({n: getattr(s, n) for n in ('DEBUG', 'SESSION_COOKIE_SECURE', "
            "'CSRF_COOKIE_SECURE', 'SECURE_HSTS_SECONDS', 'SECURE_HSTS_INCLUDE_SUBDOMAINS', "
            "'SECURE_CONTENT_TYPE_NOSNIFF', 'X_FRAME_OPTIONS', 'SESSION_COOKIE_HTTPONLY', "
            "'MIDDLEWARE', 'METRICS_TOKEN', 'METRICS_ALLOWED_IPS')}))")
    result = _run(["-c", code], env)
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


# --- production settings -----------------------------------------------------------------------

def test_check_deploy_is_clean_with_production_settings():
    result = _run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], PRODUCTION_ENV)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_refuses_to_start_without_a_secret_key_when_not_debug():
    env = {**PRODUCTION_ENV, "SECRET_KEY": ""}
    result = _run(["manage.py", "check"], env)
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr


def test_secure_cookies_and_hsts_when_not_debug():
    values = _settings_in({**PRODUCTION_ENV, "SECURE_SSL_REDIRECT": "false"})
    assert values["DEBUG"] is False
    assert values["SESSION_COOKIE_SECURE"] and values["CSRF_COOKIE_SECURE"]
    assert values["SECURE_HSTS_SECONDS"] >= 31536000
    assert values["SECURE_HSTS_INCLUDE_SUBDOMAINS"] is True
    assert values["SECURE_CONTENT_TYPE_NOSNIFF"] and values["X_FRAME_OPTIONS"] == "DENY"
    assert values["SESSION_COOKIE_HTTPONLY"] is True
    assert "django.middleware.csrf.CsrfViewMiddleware" in values["MIDDLEWARE"]
    assert "django.middleware.security.SecurityMiddleware" in values["MIDDLEWARE"]


def test_debug_relaxes_only_what_local_http_needs():
    values = _settings_in({**PRODUCTION_ENV, "DEBUG": "true", "SECURE_SSL_REDIRECT": "false"})
    assert values["DEBUG"] is True
    assert values["SESSION_COOKIE_SECURE"] is False and values["SECURE_HSTS_SECONDS"] == 0
    assert "django.middleware.csrf.CsrfViewMiddleware" in values["MIDDLEWARE"]


@pytest.mark.django_db(transaction=True)
def test_production_server_sends_hsts_and_secure_cookies():
    """The real server with production settings, reached as through a TLS proxy."""
    env = {**PRODUCTION_ENV, "ALLOWED_HOSTS": "127.0.0.1", "SECURE_SSL_REDIRECT": "false"}
    with GatewayProcess(database_url=gateway_database_url(), env=env) as gateway:
        response = httpx.get(f"{gateway.url}/admin/login/", timeout=30,
                             headers={"X-Forwarded-Proto": "https"})
        assert response.status_code == 200
        assert "max-age=31536000" in response.headers["strict-transport-security"]
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY"
        cookies = response.headers.get_list("set-cookie")
        csrf = [c for c in cookies if c.startswith("csrftoken=")]
        assert csrf and "Secure" in csrf[0]
        # A POST without the CSRF token is refused (and not with a 500).
        response = httpx.post(f"{gateway.url}/admin/login/", timeout=30,
                              headers={"X-Forwarded-Proto": "https",
                                       "Referer": "https://127.0.0.1/admin/login/"},
                              data={"username": "x", "password": "y"})
        assert response.status_code == 403


# --- admin -------------------------------------------------------------------------------------

@pytest.mark.django_db
def test_admin_is_staff_only(client):
    response = client.get("/admin/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
    user = get_user_model().objects.create_user("plain", password="pw-not-staff-123")
    client.force_login(user)
    response = client.get("/admin/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
    staff = get_user_model().objects.create_user("staffer", password="pw-staff-123",
                                                 is_staff=True, is_superuser=True)
    client.force_login(staff)
    assert client.get("/admin/").status_code == 200


@pytest.mark.django_db
def test_admin_login_enforces_csrf():
    get_user_model().objects.create_user("staff2", password="pw-staff-123", is_staff=True)
    client = Client(enforce_csrf_checks=True)
    response = client.post("/admin/login/", {"username": "staff2", "password": "pw-staff-123"})
    assert response.status_code == 403
    assert "_auth_user_id" not in client.session


@pytest.mark.django_db
def test_api_key_does_not_open_admin(client, api_key):
    response = client.get("/admin/", HTTP_AUTHORIZATION=f"Bearer {api_key.key}")
    assert response.status_code == 302


# --- observability surfaces ----------------------------------------------------------------------

@pytest.mark.django_db
def test_dashboard_is_staff_only(client):
    from django.urls import NoReverseMatch, reverse

    try:
        url = reverse("observability-dashboard")
    except NoReverseMatch:
        url = "/dashboard/"
    response = client.get(url)
    assert response.status_code in (302, 403, 404)
    if response.status_code == 302:
        assert "login" in response["Location"]
    user = get_user_model().objects.create_user("viewer", password="pw-viewer-123")
    client.force_login(user)
    response = client.get(url)
    assert response.status_code in (302, 403, 404)


@pytest.mark.django_db
def test_metrics_url_is_not_public(client):
    """An outside address without a token never reads /metrics over HTTP."""
    response = client.get("/metrics", REMOTE_ADDR="203.0.113.9")
    assert response.status_code != 200


def test_metrics_view_is_not_public_by_default(settings):
    """The view itself, with the defaults a production process reads: an outside address
    without a token is refused (loopback and private networks may scrape)."""
    from llmops.observability.exposition import _allowed_networks, metrics_view

    settings.METRICS_TOKEN = ""
    settings.METRICS_ALLOWED_IPS = _settings_in(PRODUCTION_ENV)["METRICS_ALLOWED_IPS"]
    _allowed_networks.cache_clear()
    request = RequestFactory().get("/metrics", REMOTE_ADDR="203.0.113.9")
    assert metrics_view(request).status_code in (401, 403)
    inside = RequestFactory().get("/metrics", REMOTE_ADDR="127.0.0.1")
    assert metrics_view(inside).status_code == 200


# --- secrets -------------------------------------------------------------------------------------

def test_secrets_come_from_the_environment():
    markers = {name: f"env-{name.lower()}-{secrets.token_hex(8)}" for name in
               ("SECRET_KEY", "OPENAI_API_KEY", "GEMINI_API_KEY", "ANTHROPIC_API_KEY")}
    code = ("import django, json; django.setup(); from django.conf import settings as s; "
            f"print(json.dumps({{n: getattr(s, n) for n in {sorted(markers)!r}}}))")
    result = _run(["-c", code], {**PRODUCTION_ENV, **markers})
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == markers


def test_model_profiles_name_key_variables_never_hold_keys():
    from routing.models import ModelProfile

    fields = {f.name for f in ModelProfile._meta.get_fields()}
    assert "api_key_env" in fields
    assert not {"api_key", "key", "secret", "token", "password"} & fields
