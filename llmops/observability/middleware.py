"""django-prometheus' request metrics without thread hops on the async request path.

django-prometheus' middlewares are sync `MiddlewareMixin`s: under ASGI, Django runs each of their
hooks through `sync_to_async(thread_sensitive=True)`, i.e. one shared thread per process, two or
three times per request. The hooks only touch in-memory counters, so these subclasses call them
inline when the stack is async; under WSGI they are the originals.
"""

from django_prometheus import middleware as dp

from llmops.async_middleware import InlineHooksMixin


class PrometheusBeforeMiddleware(InlineHooksMixin, dp.PrometheusBeforeMiddleware):
    """Put first in MIDDLEWARE: counts every request and its total latency."""


class PrometheusAfterMiddleware(InlineHooksMixin, dp.PrometheusAfterMiddleware):
    """Put last in MIDDLEWARE: per-view, per-method and per-status metrics."""
