"""The HTTP adapter base: one pooled client per event loop, and `stream()` / `complete()` once.

`HTTPAdapterMixin` implements both calls; a wire-format adapter only says how to build its
request, how to decode its stream events (a `sse.StreamDecoder`) and how to read its whole-answer
JSON. The rules that matter to the gateway live here, in one place:

* before the first `Delta` is yielded every failure is retry-safe and typed by cause
  (timeout, connection, status, malformed); after it, any break is `StreamInterrupted`;
* a role-only first chunk is held back and merged into the next delta, so an upstream that
  stalls right after "role: assistant" still counts as "nothing relayed" and can be retried;
* the API key never appears in an exception message (`errors.scrub`);
* the gateway's request id is sent as `X-Request-ID`.
"""

import asyncio
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import httpx
from django.conf import settings

from llmops.providers import errors
from llmops.providers.base import Completion, Delta, ProviderCall
from llmops.providers.sse import StreamDecoder, load_json, parse_sse

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


# --- The adapter base ------------------------------------------------------------------------
@dataclass
class HTTPRequest:
    """What an adapter sends upstream."""

    url: str
    headers: dict[str, str]
    body: dict
    secret: str = ""  # the key it carries, scrubbed from every error message


def _timeouts() -> tuple[float, float, httpx.Timeout]:
    """Return (first-byte timeout, idle timeout, httpx timeout) from the current settings.

    Read per call rather than baked into the pooled client so that `settings` overrides apply.
    httpx's own read timeout is only a backstop; the asyncio deadlines below decide.
    """
    first = float(settings.PROVIDER_READ_TIMEOUT_SECONDS)
    idle = float(settings.PROVIDER_STREAM_IDLE_TIMEOUT_SECONDS)
    connect = float(settings.PROVIDER_CONNECT_TIMEOUT_SECONDS)
    return first, idle, httpx.Timeout(connect=connect, read=max(first, idle) + 1.0,
                                      write=connect, pool=connect)


def _merge(held: Delta, delta: Delta) -> Delta:
    delta.role = delta.role or held.role
    return delta


def _role_only(delta: Delta) -> bool:
    return (delta.role is not None and not delta.content and not delta.tool_calls
            and delta.finish_reason is None and delta.usage is None)


class HTTPAdapterMixin:
    """`stream()` and `complete()` for adapters that POST JSON and read JSON or SSE back."""

    # --- Methods that child classes must implement ---------------------------------------
    def build_request(self, call: ProviderCall, *, stream: bool) -> HTTPRequest:
        """Return the upstream request for `call`; raise `ProviderError` if it can't be sent."""
        raise NotImplementedError("subclasses of HTTPAdapterMixin must provide build_request()")

    def stream_decoder(self, call: ProviderCall) -> StreamDecoder:
        """Return a fresh decoder for one stream of this wire format."""
        raise NotImplementedError("subclasses of HTTPAdapterMixin must provide stream_decoder()")

    def parse_completion(self, payload: dict) -> Completion:
        """Return the `Completion` in a whole-answer JSON body."""
        raise NotImplementedError("subclasses of HTTPAdapterMixin must provide parse_completion()")

    def label_for(self, call: ProviderCall) -> str:
        """Return the provider name used in error messages for `call`."""
        return call.provider or self.spec.name

    # --- Implemented once ----------------------------------------------------------------
    async def stream(self, call: ProviderCall) -> AsyncIterator[Delta]:
        """Yield the answer as `Delta`s; raise a `ProviderError` on failure."""
        request = self._request(call, stream=True)
        first_timeout, idle_timeout, _ = _timeouts()
        label = self.label_for(call)
        decoder = self.stream_decoder(call)
        started = False
        held: Delta | None = None

        def broken(exc: errors.ProviderError) -> errors.ProviderError:
            if not started:
                if isinstance(exc, errors.StreamInterrupted):
                    # Ended before anything was relayed: as retryable as a refused connection.
                    return errors.ProviderConnectionError(
                        f"{label} closed the stream before answering")
                return exc
            # After the first yielded delta nothing can be retried: the caller relayed it.
            return errors.StreamInterrupted(errors.scrub(
                f"{label} stream broke: {exc.message}", request.secret), status=exc.status)

        # Until the first delta is yielded one deadline covers connect, headers and events:
        # PROVIDER_READ_TIMEOUT_SECONDS is the time allowed to the first token.
        deadline = asyncio.get_running_loop().time() + first_timeout
        response = await self._send(request, label, deadline=deadline)
        try:
            if response.headers.get("content-type", "").startswith("application/json"):
                # The server ignored stream=true and sent the whole answer: relay it as deltas.
                try:
                    async with asyncio.timeout_at(deadline):
                        body = await _read(response, label)
                except TimeoutError:
                    raise errors.ProviderTimeout(f"{label} did not answer in time") from None
                for delta in self._completion(body, label).deltas():
                    yield delta
                return
            events = parse_sse(response.aiter_lines()).__aiter__()
            while not decoder.done:
                wait = idle_timeout if started else first_timeout
                try:
                    async with asyncio.timeout(idle_timeout) if started else asyncio.timeout_at(
                            deadline):
                        event = await anext(events)
                    deltas = decoder.feed(event)
                except StopAsyncIteration:
                    break
                except TimeoutError:
                    raise broken(errors.ProviderTimeout(f"{label} sent nothing for {wait:g}s")
                                 ) from None
                except httpx.HTTPError as exc:
                    raise broken(errors.transport_error(exc, label)) from None
                except errors.ProviderError as exc:
                    raise broken(exc) from None
                except (KeyError, IndexError, TypeError, AttributeError, ValueError) as exc:
                    raise broken(errors.ProviderMalformedResponse(
                        f"{label} sent an event of an unexpected shape ({type(exc).__name__})"
                    )) from None
                for delta in deltas:
                    if held is not None:
                        delta, held = _merge(held, delta), None
                    elif _role_only(delta) and not started:
                        held = delta
                        continue
                    started = True
                    yield delta
            try:
                closing = decoder.finish()
            except errors.ProviderError as exc:
                raise broken(exc) from None
            for delta in closing:
                if held is not None:
                    delta, held = _merge(held, delta), None
                started = True
                yield delta
        finally:
            await response.aclose()

    async def complete(self, call: ProviderCall) -> Completion:
        """Return the whole answer from one non-streamed request."""
        label = self.label_for(call)
        body = await self.post_json(with_request_id(self.build_request(call, stream=False),
                                                    call), label)
        return self._completion(body, label)

    async def post_json(self, request: HTTPRequest, label: str) -> bytes:
        """Send `request` and return its whole JSON body; raise the typed `ProviderError` for
        a status, a timeout or a broken connection."""
        first_timeout, _, _ = _timeouts()
        # The read timeout covers the whole answer: a body trickling in forever is a timeout.
        deadline = asyncio.get_running_loop().time() + first_timeout
        try:
            async with asyncio.timeout_at(deadline):
                response = await self._send(request, label, deadline=deadline)
                try:
                    return await _read(response, label)
                finally:
                    await response.aclose()
        except TimeoutError:
            raise errors.ProviderTimeout(f"{label} did not answer in {first_timeout:g}s") from None

    def _request(self, call: ProviderCall, *, stream: bool) -> HTTPRequest:
        return with_request_id(self.build_request(call, stream=stream), call)

    async def _send(self, request: HTTPRequest, label: str, *, deadline: float) -> httpx.Response:
        """Send `request`; return the open response, or raise the typed error for its status."""
        _, _, timeout = _timeouts()
        client = get_client()
        try:
            http_request = client.build_request("POST", request.url, json=request.body,
                                                headers=request.headers, timeout=timeout)
        except httpx.InvalidURL:
            raise errors.ProviderNotConfigured(f"{label} base_url is not a valid URL") from None
        try:
            async with asyncio.timeout_at(deadline):
                response = await client.send(http_request, stream=True)
        except (TimeoutError, httpx.HTTPError) as exc:
            raise errors.transport_error(exc, label) from None
        if response.status_code >= 300:  # redirects are not followed: an API never sends one
            try:
                async with asyncio.timeout_at(deadline):
                    body = await response.aread()
            except (TimeoutError, httpx.HTTPError):
                body = b""
            finally:
                await response.aclose()
            raise errors.error_for_status(response.status_code, response.headers, body,
                                   provider=label, secret=request.secret)
        return response

    def _completion(self, body: bytes, label: str) -> Completion:
        payload = load_json(body, what=f"{label} answer")
        try:
            return self.parse_completion(payload)
        except errors.ProviderError:
            raise
        except (KeyError, IndexError, TypeError, AttributeError, ValueError) as exc:
            raise errors.ProviderMalformedResponse(
                f"{label} answer is missing a field ({type(exc).__name__})") from None


def with_request_id(request: HTTPRequest, call: ProviderCall) -> HTTPRequest:
    """Return `request` carrying the gateway's request id as `X-Request-ID`: the provider's
    logs and invoices can then name the gateway's request (the ledger row has the same id),
    which is how a bill is reconciled call by call."""
    if call.request_id:
        request.headers.setdefault("X-Request-ID", call.request_id)
    return request


async def _read(response: httpx.Response, label: str) -> bytes:
    """Return the whole body; a connection cut half-way is a (retryable) connection error."""
    try:
        return await response.aread()
    except httpx.DecodingError:
        raise errors.ProviderMalformedResponse(f"{label} sent an undecodable body") from None
    except httpx.HTTPError as exc:
        raise errors.transport_error(exc, label) from None
