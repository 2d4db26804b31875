"""Shared plumbing for HTTP adapters: one request, typed errors, SSE events read with deadlines.

`HTTPAdapterMixin` implements `stream()` and `complete()` once; a wire-format adapter only says
how to build its request, how to decode its stream events (a `StreamDecoder`) and how to read its
whole-answer JSON. The rules that matter to the gateway live here, in one place:

* before the first `Delta` is yielded every failure is retry-safe and typed by cause
  (timeout, connection, status, malformed); after it, any break is `StreamInterrupted`;
* a role-only first chunk is held back and merged into the next delta, so an upstream that
  stalls right after "role: assistant" still counts as "nothing relayed" and can be retried;
* the API key never appears in an exception message (provider messages are scrubbed of it).
"""

import asyncio
import email.utils
import json
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
from django.conf import settings

from llmops.providers import errors
from llmops.providers.base import Completion, Delta, ProviderCall

logger = logging.getLogger(__name__)

_MAX_ERROR_TEXT = 300  # provider error messages are quoted, but never at unbounded length


@dataclass
class SSEEvent:
    """One server-sent event: its `event:` name ('message' when absent) and joined `data:`."""

    event: str
    data: str


async def parse_sse(lines: AsyncIterator[str]) -> AsyncIterator[SSEEvent]:
    """Yield the events of an SSE stream given its lines (without line endings)."""
    name = ""
    data: list[str] = []
    async for line in lines:
        if not line:
            if data:
                yield SSEEvent(name or "message", "\n".join(data))
            name, data = "", []
            continue
        if line.startswith(":"):  # a comment, e.g. a keep-alive ping
            continue
        field, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if field == "data":
            data.append(value)
        elif field == "event":
            name = value
    # The spec drops an unterminated last event; we keep it because a server that closes right
    # after "data: [DONE]" without the blank line has still said everything.
    if data:
        yield SSEEvent(name or "message", "\n".join(data))


def parse_retry_after(headers: httpx.Headers, *, now: float | None = None) -> float | None:
    """Return the seconds to wait from `retry-after-ms` / `Retry-After` (seconds or HTTP date)."""
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            return max(0.0, float(millis) / 1000)
        except ValueError:
            pass
    value = (headers.get("retry-after") or "").strip()
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def scrub(text: str, secret: str) -> str:
    """Return `text` without `secret` in it, shortened to a log-friendly length."""
    if secret:
        text = text.replace(secret, "[redacted]")
    return text[:_MAX_ERROR_TEXT]


def error_for_status(status: int, headers: httpx.Headers, body: bytes, *, provider: str,
                     secret: str) -> errors.ProviderError:
    """Return the typed error for an HTTP error answer (message scrubbed of the key)."""
    detail = _provider_error_text(body)
    message = scrub(f"{provider} answered HTTP {status}: {detail}" if detail
                    else f"{provider} answered HTTP {status}", secret)
    if status == 429:
        return errors.ProviderRateLimited(message, status=status,
                                          retry_after=parse_retry_after(headers))
    if status in (401, 403):
        return errors.ProviderAuthError(message, status=status)
    if status == 408:
        return errors.ProviderTimeout(message, status=status)
    if status >= 500:  # includes Anthropic's 529 "overloaded": retryable like any 5xx
        return errors.ProviderServerError(message, status=status,
                                          retry_after=parse_retry_after(headers))
    if 400 <= status < 500:  # 400, 404 (unknown model), 413, 422, ...
        return errors.ProviderBadRequest(message, status=status)
    return errors.ProviderMalformedResponse(message, status=status)


def _provider_error_text(body: bytes) -> str:
    """Return the human message of an OpenAI- or Anthropic-style error body ('' if none)."""
    try:
        payload = json.loads(body)
    except ValueError:
        return body[:_MAX_ERROR_TEXT].decode("utf-8", "replace").strip()
    if isinstance(payload, list) and payload:  # Gemini sometimes wraps the error in a list
        payload = payload[0]
    error = payload.get("error") if isinstance(payload, dict) else None
    if isinstance(error, dict):
        return str(error.get("message") or error.get("type") or "")
    if isinstance(error, str):
        return error
    return ""


def load_json(data: str | bytes, *, what: str) -> dict:
    """Return `data` parsed as a JSON object; raise `ProviderMalformedResponse` otherwise."""
    try:
        payload = json.loads(data)
    except ValueError as exc:
        raise errors.ProviderMalformedResponse(f"{what} is not valid JSON") from exc
    if not isinstance(payload, dict):
        raise errors.ProviderMalformedResponse(f"{what} is not a JSON object")
    return payload


class StreamDecoder:
    """Turns one provider's SSE events into `Delta`s. One instance per stream."""

    #: set once the provider signalled the end of the answer
    done: bool = False

    # --- Methods that child classes must implement ---------------------------------------
    def feed(self, event: SSEEvent) -> list[Delta]:
        """Return the deltas carried by `event`; raise a `ProviderError` for error events."""
        raise NotImplementedError("subclasses of StreamDecoder must provide feed()")

    # --- Optional ------------------------------------------------------------------------
    def finish(self) -> list[Delta]:
        """Return the closing deltas once the body ended; raise if the answer is incomplete."""
        if not self.done:
            raise errors.StreamInterrupted("the stream ended before the provider finished")
        return []


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

    #: shown in error messages ("openai answered HTTP 429: ...")
    provider_label: str = "provider"

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
        return call.provider or self.provider_label

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
            return errors.StreamInterrupted(
                scrub(f"{label} stream broke: {exc.message}", request.secret), status=exc.status)

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
                for delta in _completion_deltas(self._completion(body, label)):
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
                    raise broken(_transport_error(exc, label)) from None
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
        request = self._request(call, stream=False)
        first_timeout, _, _ = _timeouts()
        label = self.label_for(call)
        # The read timeout covers the whole answer: a body trickling in forever is a timeout.
        deadline = asyncio.get_running_loop().time() + first_timeout
        try:
            async with asyncio.timeout_at(deadline):
                response = await self._send(request, label, deadline=deadline)
                try:
                    body = await _read(response, label)
                finally:
                    await response.aclose()
        except TimeoutError:
            raise errors.ProviderTimeout(f"{label} did not answer in {first_timeout:g}s") from None
        return self._completion(body, label)

    def _request(self, call: ProviderCall, *, stream: bool) -> HTTPRequest:
        request = self.build_request(call, stream=stream)
        if call.request_id:
            # The provider's logs and invoices can then name the gateway's request (the ledger
            # row has the same id), which is how a bill is reconciled call by call.
            request.headers.setdefault("X-Request-ID", call.request_id)
        return request

    async def _send(self, request: HTTPRequest, label: str, *, deadline: float) -> httpx.Response:
        """Send `request`; return the open response, or raise the typed error for its status."""
        from llmops.providers.http import get_client

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
            raise _transport_error(exc, label) from None
        if response.status_code >= 300:  # redirects are not followed: an API never sends one
            try:
                async with asyncio.timeout_at(deadline):
                    body = await response.aread()
            except (TimeoutError, httpx.HTTPError):
                body = b""
            finally:
                await response.aclose()
            raise error_for_status(response.status_code, response.headers, body,
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


async def _read(response: httpx.Response, label: str) -> bytes:
    """Return the whole body; a connection cut half-way is a (retryable) connection error."""
    try:
        return await response.aread()
    except httpx.DecodingError:
        raise errors.ProviderMalformedResponse(f"{label} sent an undecodable body") from None
    except httpx.HTTPError as exc:
        raise _transport_error(exc, label) from None


def _completion_deltas(completion: Completion) -> list[Delta]:
    message = completion.message
    return [Delta(role=message.get("role") or "assistant", content=message.get("content") or "",
                  tool_calls=[{"index": i, **c} for i, c in enumerate(message["tool_calls"])]
                  if message.get("tool_calls") else None),
            Delta(finish_reason=completion.finish_reason, usage=completion.usage)]


def _transport_error(exc: BaseException, label: str) -> errors.ProviderError:
    """Return the typed error for a transport failure (never includes request headers)."""
    if isinstance(exc, httpx.ConnectTimeout | httpx.ConnectError):
        return errors.ProviderConnectionError(f"could not connect to {label}")
    if isinstance(exc, TimeoutError | httpx.TimeoutException):
        return errors.ProviderTimeout(f"{label} did not answer in time")
    if isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError | httpx.WriteError):
        return errors.ProviderConnectionError(f"{label} closed the connection")
    return errors.ProviderConnectionError(f"{label} request failed ({type(exc).__name__})")


def check_options(options: dict | None, allowed: frozenset[str]) -> dict:
    """Return `options`; raise `ProviderNotConfigured` naming any option the adapter lacks."""
    options = options or {}
    unknown = set(options) - allowed
    if unknown:
        # A profile misconfiguration, not the client's fault: the next fallback model may serve.
        raise errors.ProviderNotConfigured(
            f"unknown adapter option(s): {', '.join(sorted(unknown))}")
    return options
