"""This process as the holder of its requests' budget reservations: a heartbeat and a sweep.

Every admission names this process (`holder_id`). A loop on the process's event loop says it is
alive every BUDGET_HEARTBEAT_SECONDS and, on the same beat, releases the reservations of
processes that stopped saying so (killed, frozen): no reservation outlives its process by more
than about BUDGET_HOLDER_TIMEOUT_SECONDS + one beat, with or without Celery.
"""

import asyncio
import logging
import os
import socket
import uuid

from django.conf import settings

from budgets.services import reservation_holder_heartbeat, reservations_release_stale
from llmops.background import spawn
from llmops.db import run_db

logger = logging.getLogger("llmops.gateway")

# New on every start (and after a fork, see `holder_id`): a restarted process is a new holder,
# so the reservations of the one that died are not vouched for by its successor.
_identity: tuple[int, str] | None = None
_loop_task: asyncio.Task | None = None


def holder_id() -> str:
    """Return this process's holder id (hostname, pid and a random part)."""
    global _identity
    pid = os.getpid()
    if _identity is None or _identity[0] != pid:
        _identity = (pid, f"{socket.gethostname()[:32]}:{pid}:{uuid.uuid4().hex[:12]}")
    return _identity[1]


def heartbeat_ensure_running() -> None:
    """Start the heartbeat-and-sweep loop on the running event loop, once per loop."""
    global _loop_task
    loop = asyncio.get_running_loop()
    if _loop_task is not None and not _loop_task.done() and _loop_task.get_loop() is loop:
        return
    _loop_task = spawn(_beat_forever())


async def beat_once() -> int:
    """Heartbeat, then sweep; return how many stale reservations were released."""
    ident = holder_id()
    await run_db(reservation_holder_heartbeat, holder_id=ident,
                 hostname=socket.gethostname(), pid=os.getpid())
    return await run_db(reservations_release_stale)


async def _beat_forever() -> None:
    while True:
        try:
            released = await beat_once()
            if released:
                logger.warning("released stale reservations", extra={"released": released})
        except asyncio.CancelledError:
            raise
        except Exception:
            # A database that is down must not end the loop: beat again next time.
            logger.exception("reservation heartbeat failed")
        await asyncio.sleep(settings.BUDGET_HEARTBEAT_SECONDS)
