"""The pooled provider HTTP client: one per event loop, aiohttp's pool by default, and closed
with the loop when sync code runs provider calls in a loop of its own."""

import asyncio

from llmops.providers import http


def test_one_client_per_loop_over_aiohttp_by_default(settings):
    settings.PROVIDER_HTTP_TRANSPORT = "aiohttp"

    async def two_lookups():
        return http.get_client(), http.get_client()

    first, second = http.run_in_new_loop(two_lookups)
    assert first is second
    assert type(first._transport).__name__ == "AiohttpTransport"


def test_httpx_transport_on_request(settings):
    settings.PROVIDER_HTTP_TRANSPORT = "httpx"

    async def lookup():
        return http.get_client()

    assert type(http.run_in_new_loop(lookup)._transport).__name__ == "AsyncHTTPTransport"


def test_run_in_new_loop_closes_the_client_that_loop_created():
    async def lookup():
        return http.get_client(), asyncio.get_running_loop()

    client, loop = http.run_in_new_loop(lookup)
    assert client.is_closed
    assert loop not in http._clients
