"""django-prometheus' request metrics without thread hops on the async request path.

django-prometheus' middlewares are sync `MiddlewareMixin`s: under ASGI, Django runs each of their
hooks through `sync_to_async(thread_sensitive=True)`, i.e. one shared thread per process, two or
three times per request. The hooks only touch in-memory counters, so these subclasses call them
inline when the stack is async; under WSGI they are the originals.
"""

from asgiref.sync import iscoroutinefunction
from django_prometheus import middleware as dp

from llmops.async_middleware import _InlineHooks


class PrometheusBeforeMiddleware(_InlineHooks, dp.PrometheusBeforeMiddleware):
    """Put first in MIDDLEWARE: counts every request and its total latency."""


class PrometheusAfterMiddleware(_InlineHooks, dp.PrometheusAfterMiddleware):
    """Put last in MIDDLEWARE: per-view, per-method and per-status metrics."""

    def __init__(self, get_response):
        super().__init__(get_response)
        if iscoroutinefunction(get_response):
            # Django awaits a coroutine process_view directly; a sync one costs a thread hop.
            sync_process_view = self.process_view

            async def process_view(request, view_func, view_args, view_kwargs):
                return sync_process_view(request, view_func, view_args, view_kwargs)

            self.process_view = process_view
