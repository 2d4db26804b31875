"""Typed provider failures, and how an HTTP answer or transport failure maps onto them.

The gateway maps each type to a retry decision and an HTTP status. The API key never appears in
an error message: provider messages are scrubbed of it and transport errors never quote headers.
"""

import email.utils
import json
import time

import httpx

_MAX_ERROR_TEXT = 300  # provider error messages are quoted, but never at unbounded length


class ProviderError(Exception):
    """A provider call failed. `kind` is a bounded label (used in metrics and the ledger)."""

    kind = "error"
    retryable = False  # safe to try again (same model) before the first streamed byte
    fallback = True  # worth trying the next model in the fallback chain

    def __init__(self, message: str = "", *, status: int | None = None,
                 retry_after: float | None = None):
        super().__init__(message or self.__class__.__doc__ or self.kind)
        self.message = message or (self.__class__.__doc__ or self.kind)
        self.status = status
        self.retry_after = retry_after


class ProviderRateLimited(ProviderError):
    """The provider is rate limiting us."""

    kind = "rate_limited"
    retryable = True


class ProviderTimeout(ProviderError):
    """The provider did not answer in time."""

    kind = "timeout"
    retryable = True


class ProviderServerError(ProviderError):
    """The provider failed with a server error."""

    kind = "server_error"
    retryable = True


class ProviderConnectionError(ProviderError):
    """The provider could not be reached."""

    kind = "connection_error"
    retryable = True


class ProviderBadRequest(ProviderError):
    """The provider refused the request as invalid."""

    kind = "bad_request"
    fallback = False  # another model would most likely refuse the same body


class ProviderAuthError(ProviderError):
    """The provider refused our credentials."""

    kind = "auth_error"


class ProviderMalformedResponse(ProviderError):
    """The provider answered something that is not its wire format."""

    kind = "malformed_response"
    retryable = True


class ProviderNotConfigured(ProviderError):
    """The provider has no API key configured on this gateway."""

    kind = "not_configured"


class StreamInterrupted(ProviderError):
    """The stream broke after it had started; what was relayed stays relayed."""

    kind = "stream_interrupted"
    retryable = False
    fallback = False


# --- From HTTP ---------------------------------------------------------------------------------
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
                     secret: str) -> ProviderError:
    """Return the typed error for an HTTP error answer (message scrubbed of the key)."""
    detail = _provider_error_text(body)
    message = scrub(f"{provider} answered HTTP {status}: {detail}" if detail
                    else f"{provider} answered HTTP {status}", secret)
    if status == 429:
        return ProviderRateLimited(message, status=status, retry_after=parse_retry_after(headers))
    if status in (401, 403):
        return ProviderAuthError(message, status=status)
    if status == 408:
        return ProviderTimeout(message, status=status)
    if status >= 500:  # includes Anthropic's 529 "overloaded": retryable like any 5xx
        return ProviderServerError(message, status=status,
                                   retry_after=parse_retry_after(headers))
    if 400 <= status < 500:  # 400, 404 (unknown model), 413, 422, ...
        return ProviderBadRequest(message, status=status)
    return ProviderMalformedResponse(message, status=status)


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


def transport_error(exc: BaseException, label: str) -> ProviderError:
    """Return the typed error for a transport failure (never includes request headers)."""
    if isinstance(exc, httpx.ConnectTimeout | httpx.ConnectError):
        return ProviderConnectionError(f"could not connect to {label}")
    if isinstance(exc, TimeoutError | httpx.TimeoutException):
        return ProviderTimeout(f"{label} did not answer in time")
    if isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError | httpx.WriteError):
        return ProviderConnectionError(f"{label} closed the connection")
    return ProviderConnectionError(f"{label} request failed ({type(exc).__name__})")
