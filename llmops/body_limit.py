"""ASGI middleware: refuse an oversized request body with 413 before reading it.

Django's ASGI handler spools the whole body to disk before any view runs, so a client announcing
a huge body would otherwise be read in full before being refused.
"""

import json

from django.conf import settings

from llmops.errors import error_body


async def _refuse(send, limit: int, path: str) -> None:
    message = f"Request body is larger than the {limit} bytes allowed."
    if path.startswith("/v1/messages"):  # Anthropic's API answers in its own error shape
        from llmops.api.messages.errors import anthropic_error_body

        error = anthropic_error_body(413, message, details={"code": "payload_too_large"})
    else:
        error = error_body(message, error_type="invalid_request_error",
                           code="payload_too_large")
    body = json.dumps(error).encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


class BodySizeLimitMiddleware:
    """Wrap an ASGI app; bodies over settings.LLMOPS_MAX_BODY_BYTES get a 413 error object."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = settings.LLMOPS_MAX_BODY_BYTES
        length = None
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    length = int(value)
                except ValueError:
                    length = None
                break
        if length is not None:
            if length > limit:
                return await _refuse(send, limit, scope.get("path", ""))
            return await self.app(scope, receive, send)
        # No Content-Length (chunked): read up to the limit ourselves, then replay it.
        messages = []
        size = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            size += len(message.get("body", b""))
            if size > limit:
                return await _refuse(send, limit, scope.get("path", ""))
            if not message.get("more_body", False):
                break

        async def replay():
            if messages:
                return messages.pop(0)
            return await receive()

        return await self.app(scope, replay, send)
