"""One pooled async HTTP client per event loop, shared by every adapter."""

import asyncio
import weakref
from collections.abc import Awaitable, Callable
from typing import TypeVar

import httpx
from django.conf import settings

T = TypeVar("T")

# Per loop: its client and the guard that closes the client when the loop shuts down.
_Held = tuple[httpx.AsyncClient, object]
_clients: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Held]" = (
    weakref.WeakKeyDictionary()
)


def get_client() -> httpx.AsyncClient:
    """Return this event loop's pooled client (created on first use, closed with the loop)."""
    loop = asyncio.get_running_loop()
    held = _clients.get(loop)
    if held is not None and not held[0].is_closed:
        return held[0]
    limits = httpx.Limits(
        max_connections=settings.PROVIDER_MAX_CONNECTIONS,
        max_keepalive_connections=min(settings.PROVIDER_MAX_CONNECTIONS, 200),
    )
    client = httpx.AsyncClient(
        transport=_transport(limits),
        timeout=httpx.Timeout(
            connect=settings.PROVIDER_CONNECT_TIMEOUT_SECONDS,
            read=settings.PROVIDER_READ_TIMEOUT_SECONDS,
            write=settings.PROVIDER_CONNECT_TIMEOUT_SECONDS,
            pool=settings.PROVIDER_CONNECT_TIMEOUT_SECONDS,
        ),
        limits=limits,
    )
    _clients[loop] = (client, _close_at_loop_shutdown(loop, client))
    return client


def _close_at_loop_shutdown(loop: asyncio.AbstractEventLoop, client: httpx.AsyncClient):
    """Return a started async generator that closes `client` when `loop` shuts down.

    Loops other than the server's live for one call: `async_to_sync` (Django's test client, a
    WSGI server) and `asyncio.run` make one per call. asyncio has no loop-close callback, but
    both finish with `loop.shutdown_asyncgens()`, which closes every async generator the loop
    has seen start, and a generator's `finally` may await: there the client (and aiohttp's
    sockets) is closed, instead of leaking until garbage collection.
    """

    async def guard():
        try:
            yield
        finally:
            if _clients.get(loop, (None,))[0] is client:
                del _clients[loop]
            await client.aclose()

    agen = guard()
    step = agen.__anext__()  # registers the generator with the running loop's hooks
    try:
        step.send(None)  # runs to the yield: no await before it, so it completes at once
    except StopIteration:
        pass
    return agen  # held beside the client: the loop tracks its generators weakly


def run_in_new_loop(main: Callable[[], Awaitable[T]]) -> T:
    """Run `main()` from sync code (a Celery task, a command) in a fresh event loop; the pooled
    client that loop creates is closed as the loop shuts down (`_close_at_loop_shutdown`)."""

    async def call() -> T:
        return await main()

    return asyncio.run(call())


def _transport(limits: httpx.Limits) -> httpx.AsyncBaseTransport:
    """Return aiohttp's pool under httpx's API: at concurrency 16-64 the provider call was the
    gateway's largest stage with httpcore's own pool; aiohttp's measured +10% req/s there
    (docs/performance.md)."""
    from httpx_aiohttp import AiohttpTransport

    return AiohttpTransport(limits=limits)
