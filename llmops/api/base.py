"""An async DRF APIView whose authentication, permissions and throttles keep DRF's semantics but
run on the gateway's database pool instead of one shared thread."""

import time
from inspect import iscoroutinefunction

from django.http import HttpResponse, HttpResponseBase
from django.template.response import SimpleTemplateResponse
from rest_framework.views import APIView

from llmops.api.bridge import needs_gateway_loop, serve_on_gateway_loop
from llmops.api.negotiation import JsonAlwaysNegotiation
from llmops.db import run_db


class AsyncAPIView(APIView):
    """Like APIView, for `async def` handlers.

    DRF's `initial()` (authentication, permissions, throttling) does ORM and cache work, so it
    runs through `llmops.db.run_db`; running it with `sync_to_async`'s default would funnel every
    request of the process through a single thread.

    Under WSGI the whole request runs on the process's gateway loop (llmops/api/bridge.py), so
    that streams, upstream connections and background settlements outlive the view's own
    short-lived event loop.
    """

    content_negotiation_class = JsonAlwaysNegotiation

    async def dispatch(self, request, *args, **kwargs):
        if needs_gateway_loop(request):
            return await serve_on_gateway_loop(
                lambda: self._dispatch(request, *args, **kwargs))
        return await self._dispatch(request, *args, **kwargs)

    async def _dispatch(self, request, *args, **kwargs):
        self.args = args
        self.kwargs = kwargs
        request = self.initialize_request(request, *args, **kwargs)
        self.request = request
        self.headers = self.default_response_headers
        try:
            started = time.perf_counter()
            await run_db(self.initial, request, *args, **kwargs)
            # Kept for the Server-Timing header (stage "auth": authentication + throttling).
            request.auth_seconds = time.perf_counter() - started
            method = request.method.lower()
            handler = (getattr(self, method, self.http_method_not_allowed)
                       if method in self.http_method_names else self.http_method_not_allowed)
            response = handler(request, *args, **kwargs)
            if iscoroutinefunction(handler):
                response = await response
        except Exception as exc:
            response = self.handle_exception(exc)
        self.response = _rendered(self.finalize_response(request, response, *args, **kwargs))
        return self.response


def _rendered(response: HttpResponseBase) -> HttpResponseBase:
    """Render a DRF Response here, on the event loop, into a plain HttpResponse.

    Django's async handler renders any response that has a `render` method through
    `sync_to_async` (a thread hop per request); JSON rendering never blocks, so do it inline.
    """
    if not isinstance(response, SimpleTemplateResponse):
        return response
    response.render()
    plain = HttpResponse(response.content, status=response.status_code)
    for header, value in response.items():
        plain[header] = value
    plain.cookies = response.cookies
    plain.data = getattr(response, "data", None)  # as DRF's Response has it, for callers
    return plain
