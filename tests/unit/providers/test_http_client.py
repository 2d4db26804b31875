"""The pooled provider HTTP client: one per event loop over aiohttp's pool, and closed
with the loop when sync code runs provider calls in a loop of its own."""

import asyncio

from llmops.providers import http


def test_one_client_per_loop_over_aiohttp():
    async def two_lookups():
        return http.get_client(), http.get_client()

    first, second = http.run_in_new_loop(two_lookups)
    assert first is second
    assert type(first._transport).__name__ == "AiohttpTransport"


def test_run_in_new_loop_closes_the_client_that_loop_created():
    async def lookup():
        return http.get_client(), asyncio.get_running_loop()

    client, loop = http.run_in_new_loop(lookup)
    assert client.is_closed
    assert loop not in http._clients


def test_a_loop_made_by_async_to_sync_closes_its_client_as_it_shuts_down():
    # Django's test client and a WSGI server run each async view call in a loop of its own.
    from asgiref.sync import async_to_sync

    async def lookup():
        return http.get_client(), asyncio.get_running_loop()

    client, loop = async_to_sync(lookup)()
    assert client.is_closed and loop.is_closed()
    assert loop not in http._clients


def test_a_long_lived_loop_keeps_one_open_client_until_it_shuts_down():
    import gc

    async def many_calls():
        first = http.get_client()
        for _ in range(3):
            gc.collect()  # the guard must not be collected (and close the client) meanwhile
            await asyncio.sleep(0)
            assert http.get_client() is first and not first.is_closed
        return first

    assert asyncio.run(many_calls()).is_closed


def test_a_replaced_client_does_not_close_its_successor():
    import gc

    async def replace():
        first = http.get_client()
        await first.aclose()
        second = http.get_client()
        gc.collect()  # the first client's guard goes: its clean-up must leave the second alone
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        return first, second, second.is_closed

    first, second, closed_while_running = asyncio.run(replace())
    assert first is not second and not closed_while_running and second.is_closed
