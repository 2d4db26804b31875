"""Request id: honour a sane incoming `X-Request-ID`, else make one; echo it on the response."""

import re
import uuid

from asgiref.sync import iscoroutinefunction, markcoroutinefunction

_VALID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


def new_request_id() -> str:
    return uuid.uuid4().hex


class RequestIdMiddleware:
    """Set `request.request_id` and the `X-Request-ID` response header (sync and async)."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    @staticmethod
    def _assign(request) -> str:
        incoming = request.headers.get("X-Request-ID", "")
        request.request_id = incoming if _VALID.match(incoming) else new_request_id()
        return request.request_id

    def __call__(self, request):
        if iscoroutinefunction(self):
            return self._acall(request)
        request_id = self._assign(request)
        response = self.get_response(request)
        response["X-Request-ID"] = request_id
        return response

    async def _acall(self, request):
        request_id = self._assign(request)
        response = await self.get_response(request)
        response["X-Request-ID"] = request_id
        return response
