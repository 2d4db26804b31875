"""Anthropic's error shape: `{"type": "error", "error": {"type", "message"}, "request_id"}`.

The OpenAI-shaped handler (llmops/errors.py) decides status, message and code for every error;
this one re-renders its answer, so both front doors refuse the same requests the same way.
"""

from rest_framework.response import Response

from llmops.errors import exception_handler

# Anthropic's documented error types by HTTP status. The budget refusal keeps the chat
# endpoint's 402, which Anthropic documents as `billing_error` ("an issue with your billing or
# payment"): the caller's spending limit is reached, retrying will not help until it is raised.
_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    502: "api_error",
    503: "overloaded_error",
    504: "timeout_error",
}


def anthropic_error_type(status: int) -> str:
    """Return Anthropic's error type for an HTTP status (other 4xx: invalid_request_error)."""
    return _TYPES.get(status, "invalid_request_error" if status < 500 else "api_error")


def anthropic_error_body(status: int, message: str, *, request_id: str = "",
                         details: dict | None = None) -> dict:
    """Return Anthropic's error object; `details` (the gateway's code, param and refusal facts)
    ride along under `error.llmops`, which Anthropic's SDKs ignore."""
    error: dict = {"type": anthropic_error_type(status), "message": message}
    if details:
        error["llmops"] = details
    body: dict = {"type": "error", "error": error}
    if request_id:
        body["request_id"] = request_id
    return body


def from_openai_error(status: int, openai_body: dict, *, request_id: str = "") -> dict:
    """Return the Anthropic error object for an OpenAI-shaped one of the same status."""
    error = dict((openai_body or {}).get("error") or {})
    message = str(error.pop("message", "") or "Request failed.")
    error.pop("type", None)
    details = {key: value for key, value in error.items() if value is not None}
    return anthropic_error_body(status, message, request_id=request_id, details=details)


def messages_exception_handler(exc: Exception, context: dict) -> Response | None:
    """Render any error of the Messages views in Anthropic's shape (headers such as
    Retry-After and WWW-Authenticate are kept)."""
    response = exception_handler(exc, context)
    if response is None:
        return None
    request = context.get("request")
    request_id = ""
    if request is not None:
        django_request = getattr(request, "_request", request)
        request_id = getattr(django_request, "request_id", "") or ""
    response.data = from_openai_error(response.status_code, response.data,
                                      request_id=request_id)
    return response
