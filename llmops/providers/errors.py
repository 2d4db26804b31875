"""Typed provider failures. The gateway maps each to a retry decision and an HTTP status."""


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
