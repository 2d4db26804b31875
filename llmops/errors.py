"""Every error the API can return, declared once, and the one handler that renders them.

The body is always OpenAI's shape: `{"error": {"message", "type", "code", "param"}}`.
"""

import logging

from django.conf import settings
from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.db import DatabaseError
from django.http import Http404
from rest_framework import exceptions as drf_exceptions
from rest_framework import status
from rest_framework.response import Response

from budgets import errors as budget_errors
from routing import errors as routing_errors

logger = logging.getLogger("llmops.errors")


class GatewayError(drf_exceptions.APIException):
    """Base for llmops errors: subclasses declare status, message, code and OpenAI error type."""

    status_code = status.HTTP_400_BAD_REQUEST
    default_detail = "Invalid request."
    default_code = "invalid_request"
    error_type = "invalid_request_error"

    def __init__(self, detail: str | None = None, *, code: str | None = None,
                 param: str | None = None, retry_after: float | None = None,
                 extra: dict | None = None):
        super().__init__(detail=detail, code=code)
        self.code = code or self.default_code
        self.param = param
        self.retry_after = retry_after
        self.extra = extra or {}


class InvalidRequest(GatewayError):
    pass


class InvalidApiKey(GatewayError):
    status_code = status.HTTP_401_UNAUTHORIZED
    default_detail = "Invalid, revoked or expired API key."
    default_code = "invalid_api_key"
    error_type = "authentication_error"


class PayloadTooLarge(GatewayError):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "Request body is too large."
    default_code = "payload_too_large"


class ModelNotFound(GatewayError):
    status_code = status.HTTP_404_NOT_FOUND
    default_detail = "The model does not exist or is not enabled."
    default_code = "model_not_found"


class BudgetExceeded(GatewayError):
    status_code = status.HTTP_402_PAYMENT_REQUIRED
    default_detail = "Budget exceeded."
    default_code = "budget_exceeded"
    error_type = "insufficient_quota"


class RateLimited(GatewayError):
    status_code = status.HTTP_429_TOO_MANY_REQUESTS
    default_detail = "Rate limit exceeded."
    default_code = "rate_limit_exceeded"
    error_type = "rate_limit_error"


class UpstreamError(GatewayError):
    status_code = status.HTTP_502_BAD_GATEWAY
    default_detail = "The model provider failed to answer."
    default_code = "upstream_error"
    error_type = "api_error"


class UpstreamTimeout(UpstreamError):
    status_code = status.HTTP_504_GATEWAY_TIMEOUT
    default_detail = "The model provider did not answer in time."
    default_code = "upstream_timeout"


class ServiceUnavailable(GatewayError):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "The gateway cannot serve requests right now."
    default_code = "service_unavailable"
    error_type = "api_error"


# Routing and budgets raise plain exceptions (routing/errors.py, budgets/errors.py): they know
# nothing of HTTP. Each is rendered as the API error below, with its message, code and details.
_DOMAIN_ERRORS: dict[type, type[GatewayError]] = {
    routing_errors.InvalidRequest: InvalidRequest,
    routing_errors.ModelNotFound: ModelNotFound,
    routing_errors.ModelsUnavailable: ServiceUnavailable,
    budget_errors.BudgetExceeded: BudgetExceeded,
    budget_errors.DuplicateRequestId: InvalidRequest,
}
DOMAIN_ERRORS = (routing_errors.RoutingError, budget_errors.BudgetError)


def from_domain_error(exc: Exception) -> GatewayError:
    """Return the API error that renders a routing or budgets refusal."""
    error = next((_DOMAIN_ERRORS[cls] for cls in type(exc).__mro__ if cls in _DOMAIN_ERRORS),
                 InvalidRequest)
    return error(exc.message, code=exc.code, param=getattr(exc, "param", None),
                 retry_after=getattr(exc, "retry_after", None),
                 extra=getattr(exc, "extra", None))


_DRF_TYPES = {
    401: ("authentication_error", "invalid_api_key"),
    403: ("permission_error", "permission_denied"),
    404: ("invalid_request_error", "not_found"),
    405: ("invalid_request_error", "method_not_allowed"),
    406: ("invalid_request_error", "not_acceptable"),
    415: ("invalid_request_error", "unsupported_media_type"),
    429: ("rate_limit_error", "rate_limit_exceeded"),
}


def error_body(message: str, *, error_type: str, code: str | None, param: str | None = None,
               **extra) -> dict:
    """Return the OpenAI-style error object."""
    return {"error": {"message": message, "type": error_type, "code": code, "param": param,
                      **extra}}


def _first_validation_error(detail, path: str = "") -> tuple[str, str]:
    """Return `(param, message)` for the first leaf of a DRF validation error tree."""
    if isinstance(detail, dict):
        for key, value in detail.items():
            name = "" if key == "non_field_errors" else str(key)
            sub = f"{path}.{name}" if path and name else (name or path)
            return _first_validation_error(value, sub)
    if isinstance(detail, list):
        for index, value in enumerate(detail):
            if isinstance(value, (dict, list)) and len(detail) > 1 or isinstance(value, dict):
                return _first_validation_error(value, f"{path}[{index}]" if path else str(index))
            return _first_validation_error(value, path)
    return path, str(detail)


def exception_handler(exc: Exception, context: dict) -> Response | None:
    """Render any API error as an OpenAI-style error object (DRF's EXCEPTION_HANDLER)."""
    if isinstance(exc, DOMAIN_ERRORS):
        exc = from_domain_error(exc)
    elif isinstance(exc, RequestDataTooBig):
        exc = PayloadTooLarge(
            f"Request body is larger than the {settings.LLMOPS_MAX_BODY_BYTES} bytes allowed.")
    elif isinstance(exc, DatabaseError):
        logger.error("database unavailable: %s", exc.__class__.__name__)
        exc = ServiceUnavailable("The gateway's database is unavailable; no model was called.",
                                 code="database_unavailable")
    elif isinstance(exc, Http404):
        exc = drf_exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = drf_exceptions.PermissionDenied()

    if isinstance(exc, GatewayError):
        body = error_body(str(exc.detail), error_type=exc.error_type, code=exc.code,
                          param=exc.param, **exc.extra)
        headers = {}
        if exc.retry_after is not None:
            headers["Retry-After"] = str(max(1, int(round(exc.retry_after))))
        return Response(body, status=exc.status_code, headers=headers)

    if isinstance(exc, drf_exceptions.ValidationError):
        param, message = _first_validation_error(exc.detail)
        text = f"{param}: {message}" if param else message
        return Response(error_body(text, error_type="invalid_request_error", code="invalid_value",
                                   param=param or None), status=400)

    if isinstance(exc, drf_exceptions.APIException):
        error_type, code = _DRF_TYPES.get(exc.status_code, ("invalid_request_error", None))
        if exc.status_code == 400:
            code = exc.get_codes() if isinstance(exc.get_codes(), str) else "invalid_request"
        headers = {}
        if isinstance(exc, drf_exceptions.Throttled) and exc.wait is not None:
            headers["Retry-After"] = str(max(1, int(exc.wait)))
        if getattr(exc, "auth_header", None):
            headers["WWW-Authenticate"] = exc.auth_header
        return Response(error_body(str(exc.detail), error_type=error_type, code=code),
                        status=exc.status_code, headers=headers)

    # Unknown: log it with its traceback and answer a clean 500 rather than Django's HTML page.
    logger.exception("Unhandled error in API view", exc_info=exc)
    return Response(error_body("The gateway hit an internal error.", error_type="api_error",
                               code="internal_error"), status=500)
