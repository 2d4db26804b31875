"""Work started and not awaited: each task is kept alive until it ends, and a group can be awaited.

The event loop keeps only weak references to tasks, so a task nobody holds may be collected
mid-flight; a `Background` group holds strong ones until each task is done. The gateway's own work
(settlement after a disconnect, shared resets, heartbeats) runs in this process's default group
through `spawn`; a room that must wait for its own work (the cache's write-behind) keeps a group.
"""

import asyncio
import time
from collections.abc import Awaitable, Iterator


class Background:
    """A set of tasks that outlive whoever started them, awaitable together."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Future] = set()

    def spawn(self, work: Awaitable) -> asyncio.Future:
        """Run `work` as a task that lives until it finishes, even if its starter is cancelled."""
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def wait(self, timeout: float | None = None) -> None:
        """Wait until the group is empty, tasks started by its tasks included, or `timeout`
        seconds passed (tests, graceful shutdown); never raises what the tasks raised."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._tasks:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return
            await asyncio.wait(list(self._tasks), timeout=remaining)

    def __iter__(self) -> Iterator[asyncio.Future]:
        return iter(list(self._tasks))

    def __len__(self) -> int:
        return len(self._tasks)


_process = Background()


def spawn(work: Awaitable) -> asyncio.Future:
    """Run `work` in this process's default background group."""
    return _process.spawn(work)
