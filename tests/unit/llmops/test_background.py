"""Background groups: tasks outlive their starter and are held until done; groups are awaitable."""

import asyncio
import gc

from llmops.background import Background, spawn


class TestBackground:
    async def test_a_task_nobody_holds_runs_to_its_end(self):
        group = Background()
        done = asyncio.Event()

        async def work():
            await asyncio.sleep(0.01)
            gc.collect()
            done.set()

        group.spawn(work())
        gc.collect()
        assert len(group) == 1
        await asyncio.wait_for(done.wait(), 1)
        await asyncio.sleep(0)
        assert len(group) == 0

    async def test_the_task_survives_its_starter_being_cancelled(self):
        group = Background()
        finished = []

        async def work():
            await asyncio.sleep(0.02)
            finished.append(True)

        async def starter():
            await asyncio.shield(group.spawn(work()))

        starting = asyncio.ensure_future(starter())
        await asyncio.sleep(0.005)
        starting.cancel()
        await group.wait(timeout=1)
        assert finished == [True]

    async def test_wait_covers_tasks_started_by_the_groups_tasks(self):
        group = Background()
        order = []

        async def inner():
            await asyncio.sleep(0.02)
            order.append("inner")

        async def outer():
            await asyncio.sleep(0.01)
            group.spawn(inner())
            order.append("outer")

        group.spawn(outer())
        await group.wait(timeout=1)
        assert order == ["outer", "inner"] and len(group) == 0

    async def test_wait_gives_up_after_the_timeout_and_does_not_raise(self):
        group = Background()
        blocked = asyncio.Event()

        async def fails():
            raise RuntimeError("the task's own failure")

        group.spawn(fails())
        forever = group.spawn(blocked.wait())
        await group.wait(timeout=0.05)
        assert list(group) == [forever]
        blocked.set()
        await group.wait(timeout=1)
        assert len(group) == 0

    async def test_groups_are_apart_from_the_process_default(self):
        group = Background()
        blocked = asyncio.Event()
        default_task = spawn(blocked.wait())
        group.spawn(asyncio.sleep(0))
        await group.wait(timeout=1)  # does not wait for the default group's task
        assert not default_task.done()
        blocked.set()
        await default_task
