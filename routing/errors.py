"""What routing refuses, as plain exceptions: the API renders them (llmops.errors), so routing
needs nothing of HTTP or DRF."""


class RoutingError(Exception):
    """A request routing cannot serve: a message for the caller, the request `param` at fault,
    a machine-readable `code`, and `retry_after` seconds when waiting helps."""

    default_code = "invalid_request"

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None,
                 retry_after: float | None = None):
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code or self.default_code
        self.retry_after = retry_after


class InvalidRequest(RoutingError):
    """The request as sent cannot be routed: a malformed hint, or no model can serve it
    (capability, context window, the caller's limits)."""


class ModelNotFound(RoutingError):
    """The requested model is neither an enabled profile nor one of the team's aliases."""

    default_code = "model_not_found"


class ModelNotConfigured(InvalidRequest):
    """The requested model (or every candidate of `auto` or an alias) cannot be called on this
    gateway as configured, e.g. its provider's API key is not set."""

    default_code = "model_not_configured"


class ModelsUnavailable(RoutingError):
    """Every candidate model is cooling down after upstream failures."""

    default_code = "service_unavailable"


class UnboundedInput(InvalidRequest):
    """A request part whose billed tokens cannot be bounded before the call (so no budget can
    be reserved for it), e.g. a file referenced by `file_id`."""

    default_code = "unbounded_input"
