"""Django's stock middlewares, minus the thread hops they cost every API request under ASGI.

Django runs a sync-only middleware, and each hook of a `MiddlewareMixin` one, through
`sync_to_async(thread_sensitive=True)` when the stack is async: about a dozen thread hops per
request with the stock list, plus a sync/async round trip for WhiteNoise, which has no async
mode at all. Measured with `python -m bench.ab` (see docs/performance.md), that is a large share
of the gateway's own latency. So:

* hooks that never block (security headers, X-Frame-Options, CommonMiddleware's checks) run
  inline on the event loop;
* the middlewares that only serve browser sessions (sessions, CSRF, auth from the session,
  messages) are skipped on the API prefix (`API_PATH_PREFIX`, "/v1/"): OpenAI-style endpoints
  authenticate by API key through DRF, never read a session, and DRF's views are CSRF-exempt.
  Everywhere else (admin, dashboard, metrics) they run exactly as Django ships them, thread
  hops included, because their hooks may touch the database;
* WhiteNoise answers a static file from its in-memory table and otherwise hands the request
  on, without leaving the event loop.

Settings keep Django's own dotted paths (so `manage.py check --deploy` inspects them as usual);
`GatewayASGIHandler`, the ASGI application, loads these subclasses in their place. Under WSGI, or
Django's test client, the stock classes run, and each class here behaves exactly like its parent
in a sync stack.
"""

import asyncio
from types import MethodType

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.conf import settings
from django.contrib.auth import middleware as auth_middleware
from django.contrib.messages import middleware as messages_middleware
from django.contrib.sessions import middleware as sessions_middleware
from django.core import signals
from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.middleware import clickjacking, common, csrf, security
from django.urls import set_script_prefix
from whitenoise import middleware as whitenoise_middleware


def is_api_request(request) -> bool:
    """Return whether `request` targets the API-key authenticated API (no browser session)."""
    try:
        return request._llmops_is_api  # asked by several middlewares on every request
    except AttributeError:
        request._llmops_is_api = request.path_info.startswith(settings.API_PATH_PREFIX)
        return request._llmops_is_api


class InlineHooksMixin:
    """Run every hook inline in async mode: they never block."""

    def __init__(self, get_response):
        super().__init__(get_response)
        if iscoroutinefunction(get_response):
            # Django awaits coroutine process_view / process_template_response hooks directly;
            # sync ones cost a thread hop each.
            for name in ("process_view", "process_template_response"):
                if hasattr(self, name):
                    setattr(self, name, _inline_coroutine(getattr(self, name)))

    async def __acall__(self, request):
        response = self.process_request(request) if hasattr(self, "process_request") else None
        response = response or await self.get_response(request)
        if hasattr(self, "process_response"):
            response = self.process_response(request, response)
        return response


def _inline_coroutine(hook):
    """Return `hook` (a bound method) as a coroutine method bound to the same middleware:
    Django names `hook.__self__` in its error messages."""

    async def inline(middleware, *args):
        return hook(*args)

    return MethodType(inline, hook.__self__)


class _SkipOnApi:
    """Skip this middleware for API requests in async mode; elsewhere, Django's behaviour."""

    def __init__(self, get_response):
        super().__init__(get_response)
        if iscoroutinefunction(get_response) and hasattr(self, "process_view"):
            # Django awaits a coroutine process_view directly; a sync one costs a thread hop on
            # every request, the API's included.
            sync_process_view = self.process_view
            run_in_thread = sync_to_async(sync_process_view, thread_sensitive=True)

            async def process_view(request, view_func, view_args, view_kwargs):
                if is_api_request(request):
                    return None
                return await run_in_thread(request, view_func, view_args, view_kwargs)

            self.process_view = process_view

    async def __acall__(self, request):
        if is_api_request(request):
            return await self.get_response(request)
        return await super().__acall__(request)


class SecurityMiddleware(InlineHooksMixin, security.SecurityMiddleware):
    """Security headers and HTTPS redirect, inline."""


class CommonMiddleware(InlineHooksMixin, common.CommonMiddleware):
    """Disallowed user agents, PREPEND_WWW / APPEND_SLASH redirects, inline."""


class XFrameOptionsMiddleware(InlineHooksMixin, clickjacking.XFrameOptionsMiddleware):
    """X-Frame-Options, inline."""


class SessionMiddleware(_SkipOnApi, sessions_middleware.SessionMiddleware):
    """Sessions, except on the API (a session save may write to the database)."""


class CsrfViewMiddleware(_SkipOnApi, csrf.CsrfViewMiddleware):
    """CSRF protection, except on the API (API-key authenticated, CSRF-exempt views)."""


class AuthenticationMiddleware(_SkipOnApi, auth_middleware.AuthenticationMiddleware):
    """`request.user` from the session, except on the API (DRF sets it from the API key)."""


class MessageMiddleware(_SkipOnApi, messages_middleware.MessageMiddleware):
    """Flash messages (admin), except on the API."""


class WhiteNoiseMiddleware(whitenoise_middleware.WhiteNoiseMiddleware):
    """WhiteNoise that stays on the event loop: a static hit is a dict lookup (a stat in DEBUG's
    autorefresh mode), anything else goes straight on to the rest of the async chain."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response=None, settings=settings):
        super().__init__(get_response, settings)
        self._async = iscoroutinefunction(get_response)
        if self._async:
            markcoroutinefunction(self)

    def __call__(self, request):
        if self._async:
            return self._acall(request)
        return super().__call__(request)

    async def _acall(self, request):
        if self.autorefresh:
            static_file = self.find_file(request.path_info)
        else:
            static_file = self.files.get(request.path_info)
        if static_file is not None:
            return self.serve(static_file, request)
        return await self.get_response(request)


# Django's middleware (as named in settings.MIDDLEWARE) -> the hop-free subclass above.
ASYNC_EQUIVALENTS = {
    f"{parent.__module__}.{parent.__qualname__}": f"{__name__}.{cls.__qualname__}"
    for cls in (SecurityMiddleware, CommonMiddleware, XFrameOptionsMiddleware, SessionMiddleware,
                CsrfViewMiddleware, AuthenticationMiddleware, MessageMiddleware,
                WhiteNoiseMiddleware)
    for parent in cls.__mro__[1:]
    if parent.__module__.startswith(("django.", "whitenoise."))
    and parent.__qualname__ == cls.__qualname__
}


def _is_api_scope(scope: dict) -> bool:
    """`is_api_request` for an ASGI scope, before Django builds the request."""
    path = scope.get("path", "")
    root = scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root):]
    return path.startswith(settings.API_PATH_PREFIX)


class GatewayASGIHandler(ASGIHandler):
    """Django's ASGI handler, building its middleware chain from ASYNC_EQUIVALENTS, with a
    request cycle for the API that never leaves the event loop.

    Django wraps every request in a `ThreadSensitiveContext` and sends `request_started` /
    `request_finished` (through `response.close()`) with `sync_to_async`: the first such call
    starts a fresh executor thread for the request, and leaving the context starts another
    thread to shut it down. Two thread starts and two hops per request, for receivers
    (`reset_queries`, `close_old_connections`, `close_caches`, `reset_urlconf`) that do no I/O
    on the event loop's thread, which never holds a database connection (the API's ORM work
    runs on `llmops.db`'s pool, whose threads check their own connections). On the API prefix
    the signals are therefore sent inline; everywhere else (admin, dashboard, metrics, whose
    sync views do use this machinery) Django's cycle runs unchanged.
    """

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and _is_api_scope(scope):
            await self._handle_api(scope, receive, send)
        else:
            await super().__call__(scope, receive, send)

    async def _handle_api(self, scope, receive, send) -> None:
        # Django's `handle`, with the request signals sent inline (see the class docstring).
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        set_script_prefix(get_script_prefix(scope))
        signals.request_started.send(sender=self.__class__, scope=scope)
        request, error_response = self.create_request(scope, body_file)
        if request is None:
            body_file.close()
            await self.send_response(error_response, send)
            error_response.close()
            return

        async def process_request():
            response = await self.run_get_response(request)
            try:
                await self.send_response(response, send)
            except asyncio.CancelledError:
                pass  # the client went away while the response was being sent
            return response

        # As Django does: the view is cancelled when the client disconnects first.
        listener = asyncio.create_task(self.listen_for_disconnect(receive))
        processor = asyncio.create_task(process_request())
        tasks = [listener, processor]
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in tasks:
            if task.done():
                try:
                    task.result()
                except RequestAborted:
                    pass
                except AssertionError:
                    body_file.close()
                    raise
            else:
                task.cancel()
                try:
                    await task
                except asyncio.CancelledError:
                    pass
        try:
            response = processor.result()
        except asyncio.CancelledError:
            signals.request_finished.send(sender=self.__class__)
        else:
            response.close()  # sends request_finished
        body_file.close()

    def load_middleware(self, is_async: bool = False) -> None:
        configured = settings.MIDDLEWARE
        # Swapped for the one call that reads it (at start-up), then restored, so the
        # settings everyone else sees (checks, the test client) name Django's classes.
        settings.MIDDLEWARE = [ASYNC_EQUIVALENTS.get(path, path) for path in configured]
        try:
            super().load_middleware(is_async)
        finally:
            settings.MIDDLEWARE = configured
