"""One pooled async HTTP client per event loop, shared by every adapter."""

import asyncio
import weakref
from collections.abc import Awaitable, Callable
from typing import TypeVar

import httpx
from django.conf import settings

T = TypeVar("T")

_clients: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient]" = (
    weakref.WeakKeyDictionary()
)


def get_client() -> httpx.AsyncClient:
    """Return this event loop's pooled client (created on first use)."""
    loop = asyncio.get_running_loop()
    client = _clients.get(loop)
    if client is None or client.is_closed:
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
        _clients[loop] = client
    return client


def run_in_new_loop(main: Callable[[], Awaitable[T]]) -> T:
    """Run `main()` from sync code (a Celery task, a command) in a fresh event loop, and close
    the pooled client that loop created: it dies with the loop, and an unclosed one would keep
    its sockets open until garbage collection (and aiohttp logs it)."""

    async def scoped() -> T:
        try:
            return await main()
        finally:
            client = _clients.pop(asyncio.get_running_loop(), None)
            if client is not None:
                await client.aclose()

    return asyncio.run(scoped())


def _transport(limits: httpx.Limits) -> httpx.AsyncBaseTransport | None:
    """aiohttp's pool under httpx's API (PROVIDER_HTTP_TRANSPORT=aiohttp, the default): at
    concurrency 16-64 the provider call was the gateway's largest stage with httpcore's pool;
    None keeps httpx's own transport."""
    if settings.PROVIDER_HTTP_TRANSPORT != "aiohttp":
        return None
    from httpx_aiohttp import AiohttpTransport

    return AiohttpTransport(limits=limits)
