"""Work the gateway starts and does not await: settlement after a disconnect, cache stores,
shared resets. The event loop keeps only weak references to tasks, so these keep strong ones
until each task is done."""

import asyncio
from collections.abc import Coroutine

_tasks: set[asyncio.Task] = set()


def spawn(coro: Coroutine) -> asyncio.Task:
    """Run `coro` as a task that lives until it finishes, even if its starter is cancelled."""
    task = asyncio.ensure_future(coro)
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)
    return task
