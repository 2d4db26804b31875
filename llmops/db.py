"""Run ORM work from the async request path on a bounded thread pool, one connection per thread.

Django's own `sync_to_async` defaults to `thread_sensitive=True`, which funnels every ORM call of a
process through one thread and so serializes requests. The gateway instead runs each unit of
database work on a dedicated pool; each thread keeps its own (persistent, health-checked)
connection, so concurrent requests reach the database concurrently.
"""

import asyncio
import functools
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

from django.conf import settings
from django.db import DatabaseError, close_old_connections, connections

P = ParamSpec("P")
T = TypeVar("T")

_executor: ThreadPoolExecutor | None = None


def _get_executor() -> ThreadPoolExecutor:
    global _executor
    if _executor is None:
        _executor = ThreadPoolExecutor(
            max_workers=settings.GATEWAY_DB_THREADS, thread_name_prefix="llmops-db"
        )
    return _executor


# How often a pool thread re-checks its connection. Django's health check costs a round trip
# (`SELECT 1`), so doing it before every unit of work would add several per request; once a
# second still drops a broken or expired connection quickly (a failure in between surfaces as
# a DatabaseError, which the gateway answers with a 503).
CONNECTION_CHECK_SECONDS = 1.0
_checked = threading.local()


def _run_with_fresh_connection(fn: Callable[..., T], args: tuple, kwargs: dict) -> T:
    now = time.monotonic()
    if now - getattr(_checked, "at", 0.0) >= CONNECTION_CHECK_SECONDS:
        # Drop connections that are broken or past CONN_MAX_AGE, as Django does at the start of
        # every request for its own request thread.
        close_old_connections()
        _checked.at = now
    try:
        return fn(*args, **kwargs)
    except DatabaseError:
        _checked.at = 0.0  # check (and replace) the connection before the next use
        raise


async def run_db(fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """Run `fn(*args, **kwargs)` on the database thread pool and return its result."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(
        _get_executor(), functools.partial(_run_with_fresh_connection, fn, args, kwargs)
    )


def db_task(fn: Callable[P, T]) -> Callable[P, "asyncio.Future[T]"]:
    """Decorate a sync ORM function so that calling it awaits it on the database pool."""

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        return await run_db(fn, *args, **kwargs)

    return wrapper


def close_pool() -> None:
    """Close every pool thread's database connection and stop the pool (tests, shutdown).

    Each thread holds its own connection, so each must close it: a barrier makes every thread
    take exactly one closing job.
    """
    global _executor
    executor, _executor = _executor, None
    if executor is None:
        return
    threads = len(executor._threads)
    if threads:
        barrier = threading.Barrier(threads)

        def close() -> None:
            connections.close_all()
            barrier.wait(timeout=10)

        for future in [executor.submit(close) for _ in range(threads)]:
            try:
                future.result(timeout=15)
            except Exception:  # a thread stuck elsewhere; shutting down is still right
                pass
    executor.shutdown(wait=True)
