"""Observability routes: Prometheus' /metrics and the staff dashboard."""

from django.urls import path

from llmops.observability.exposition import metrics_view
from llmops.observability.views import dashboard_view

urlpatterns = [
    path("metrics", metrics_view, name="metrics"),
    path("dashboard/", dashboard_view, name="observability-dashboard"),
]
