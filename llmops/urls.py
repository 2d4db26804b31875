"""URL map: the OpenAI-compatible API under /v1, health probes, docs, admin, metrics."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

urlpatterns = [
    path("", include("llmops.api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("", include("llmops.observability.urls")),
    path("admin/", admin.site.urls),
]


# The Anthropic Messages front door's URLs: their errors, unknown URLs included, are Anthropic's.
ANTHROPIC_PREFIX = "/v1/messages"


def _json_error(status: int, message: str, code: str):
    from django.http import JsonResponse

    from llmops.errors import error_body

    def view(request, exception=None):
        body = error_body(message, error_type="invalid_request_error"
                          if status < 500 else "api_error", code=code)
        if request.path.startswith(ANTHROPIC_PREFIX):  # each front door answers in its own shape
            from llmops.api.messages.errors import from_openai_error

            body = from_openai_error(status, body,
                                     request_id=request.headers.get("x-request-id", ""))
        return JsonResponse(body, status=status)

    return view


handler400 = _json_error(400, "Bad request.", "bad_request")
handler403 = _json_error(403, "Forbidden.", "permission_denied")
handler404 = _json_error(404, "Unknown URL.", "not_found")
handler500 = _json_error(500, "The gateway hit an internal error.", "internal_error")
