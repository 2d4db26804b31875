"""GET /metrics: every process's metrics (multiprocess mode), for allowed IPs and/or a token."""

import hmac
import ipaddress
import os
from collections.abc import Iterable
from functools import cache

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_GET
from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector

from llmops.observability.budget_gauge import BudgetUtilizationCollector


class _DefaultRegistry:
    """Collector that re-exports this process's default registry into a per-scrape registry."""

    def collect(self) -> Iterable[Metric]:
        return REGISTRY.collect()


def multiprocess_dir() -> str:
    """Return the multiprocess directory ('' when this server runs one process)."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")


def build_registry() -> CollectorRegistry:
    """Return a registry holding what one scrape must see.

    With PROMETHEUS_MULTIPROC_DIR set, every worker process writes its samples to files there and
    the registry merges all of them, whichever process answers the scrape; otherwise it is this
    process's default registry. Budget utilization always comes from the shared snapshot.
    """
    registry = CollectorRegistry(auto_describe=False)
    if multiprocess_dir():
        MultiProcessCollector(registry)
    else:
        registry.register(_DefaultRegistry())
    registry.register(BudgetUtilizationCollector())
    return registry


@cache
def _allowed_networks() -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] | None:
    """Return the networks allowed to scrape; None when any address is ("*")."""
    entries = [entry.strip() for entry in settings.METRICS_ALLOWED_IPS if entry.strip()]
    if "*" in entries:
        return None
    return tuple(ipaddress.ip_network(entry, strict=False) for entry in entries)


@receiver(setting_changed)
def _reset_networks(*, setting: str, **kwargs) -> None:
    if setting == "METRICS_ALLOWED_IPS":
        _allowed_networks.cache_clear()


def client_ip_allowed(remote_addr: str) -> bool:
    """Return whether `remote_addr` is in METRICS_ALLOWED_IPS (always, for "*")."""
    networks = _allowed_networks()
    if networks is None:
        return True
    try:
        address = ipaddress.ip_address(remote_addr)
    except ValueError:
        return False
    if address.version == 6 and address.ipv4_mapped:
        address = address.ipv4_mapped
    return any(address in network for network in networks)


def token_valid(authorization: str) -> bool:
    """Return whether the Authorization header carries METRICS_TOKEN (always, when unset)."""
    expected = settings.METRICS_TOKEN
    if not expected:
        return True
    scheme, _, presented = authorization.partition(" ")
    if scheme.lower() != "bearer":
        presented = ""
    # Constant-time, so response timing does not reveal how much of the token matched.
    return hmac.compare_digest(presented.strip().encode(), expected.encode())


@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    """Return the Prometheus exposition of every metric, after the access checks."""
    if not client_ip_allowed(request.META.get("REMOTE_ADDR", "")):
        return HttpResponse("Forbidden\n", status=403, content_type="text/plain")
    if not token_valid(request.headers.get("Authorization", "")):
        response = HttpResponse("Unauthorized\n", status=401, content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
    return HttpResponse(encoder(build_registry()), content_type=content_type)
