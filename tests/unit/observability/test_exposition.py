"""/metrics: access checks (token, IP allow-list) and the multiprocess merge."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import RequestFactory

from llmops.observability.exposition import client_ip_allowed, metrics_view, token_valid

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(autouse=True)
def _no_budget_snapshot(monkeypatch):
    # These tests are about exposition, not budgets: keep the collector off the database.
    monkeypatch.setattr("llmops.observability.budget_gauge.budget_utilization_snapshot",
                        lambda: [])


class TestAccess:
    def test_by_default_only_loopback_and_private_networks_may_scrape(self):
        assert token_valid("")
        assert client_ip_allowed("127.0.0.1") and client_ip_allowed("10.2.3.4")
        assert client_ip_allowed("192.168.1.5") and client_ip_allowed("::1")
        assert not client_ip_allowed("203.0.113.9")

    def test_a_star_opens_the_list(self, settings):
        settings.METRICS_ALLOWED_IPS = ["*"]
        assert client_ip_allowed("203.0.113.9")

    def test_token_must_match_as_a_bearer(self, settings):
        settings.METRICS_TOKEN = "s3cret"
        assert token_valid("Bearer s3cret")
        assert not token_valid("Bearer s3cre")
        assert not token_valid("Basic s3cret")
        assert not token_valid("")

    def test_ip_allow_list_takes_addresses_and_networks(self, settings):
        settings.METRICS_ALLOWED_IPS = ["10.0.0.0/8", "192.0.2.7"]
        assert client_ip_allowed("10.1.2.3")
        assert client_ip_allowed("192.0.2.7")
        assert client_ip_allowed("::ffff:10.9.9.9")
        assert not client_ip_allowed("192.0.2.8")
        assert not client_ip_allowed("not-an-ip")


class TestMetricsView:
    def test_refuses_a_missing_token_with_401(self, settings):
        settings.METRICS_TOKEN = "s3cret"
        response = metrics_view(RequestFactory().get("/metrics"))
        assert response.status_code == 401
        assert response["WWW-Authenticate"].startswith("Bearer")

    def test_refuses_an_address_outside_the_list_with_403(self, settings):
        settings.METRICS_ALLOWED_IPS = ["10.0.0.0/8"]
        response = metrics_view(RequestFactory().get("/metrics", REMOTE_ADDR="127.0.0.1"))
        assert response.status_code == 403

    def test_serves_the_exposition_format(self, settings):
        settings.METRICS_TOKEN = "s3cret"
        settings.METRICS_ALLOWED_IPS = ["127.0.0.1"]
        request = RequestFactory().get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret",
                                       REMOTE_ADDR="127.0.0.1")
        response = metrics_view(request)
        assert response.status_code == 200
        assert response["Content-Type"].startswith("text/plain")
        body = response.content.decode()
        assert "# TYPE llm_requests_total counter" in body
        assert "# TYPE llm_budget_utilization_ratio gauge" in body


_WRITER = """
from llmops import metrics
metrics.observe_request(model="mp", status="ok", cache_status="miss", cost=0.5, cost_saved=0,
                        prompt_tokens=1, completion_tokens=1, duration_s=0.1, team="t")
"""

_READER = """
import django
django.setup()
from unittest import mock
from prometheus_client import generate_latest
with mock.patch("llmops.observability.budget_gauge.budget_utilization_snapshot", lambda: []):
    from llmops.observability.exposition import build_registry
    print(generate_latest(build_registry()).decode())
"""


def test_multiprocess_mode_merges_every_process(tmp_path):
    """Two server processes each count a request; a third process's scrape sees both."""
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path),
           "DJANGO_SETTINGS_MODULE": "llmops.settings.test"}
    for _ in range(2):
        subprocess.run([sys.executable, "-c", _WRITER], env=env, cwd=ROOT, check=True,
                       timeout=60)
    out = subprocess.run([sys.executable, "-c", _READER], env=env, cwd=ROOT, check=True,
                         timeout=60, capture_output=True, text=True).stdout
    assert 'llm_requests_total{cached="false",model="mp",status="ok"} 2.0' in out
    assert 'llm_cost_dollars_total{model="mp",team="t",tier="unknown"} 1.0' in out
