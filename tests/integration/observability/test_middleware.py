"""The async-native django-prometheus middlewares count requests on the ASGI path."""

import pytest
from asgiref.sync import iscoroutinefunction
from django.test import AsyncClient
from prometheus_client import REGISTRY

from llmops.observability.middleware import PrometheusAfterMiddleware

BEFORE = "llmops.observability.middleware.PrometheusBeforeMiddleware"
AFTER = "llmops.observability.middleware.PrometheusAfterMiddleware"


def _value(name: str, labels: dict | None = None) -> float:
    return REGISTRY.get_sample_value(name, labels or {}) or 0.0


@pytest.mark.django_db(transaction=True)
async def test_requests_are_counted_by_view_and_status(settings):
    assert settings.MIDDLEWARE[0] == BEFORE and settings.MIDDLEWARE[-1] == AFTER
    before = _value("django_http_requests_before_middlewares_total")
    by_status = _value("django_http_responses_total_by_status_total", {"status": "200"})
    response = await AsyncClient().get("/healthz")
    assert response.status_code == 200
    assert _value("django_http_requests_before_middlewares_total") == before + 1
    assert _value("django_http_responses_total_by_status_total", {"status": "200"}) == \
        by_status + 1
    latency = _value("django_http_requests_latency_seconds_by_view_method_count",
                     {"view": "healthz", "method": "GET"})
    assert latency >= 1


def test_process_view_is_a_coroutine_only_on_the_async_stack():
    async def async_get_response(request):
        return None

    assert iscoroutinefunction(PrometheusAfterMiddleware(async_get_response).process_view)
    assert not iscoroutinefunction(PrometheusAfterMiddleware(lambda r: None).process_view)
