"""Content negotiation for an API that always answers JSON (or, for streams, SSE).

Clients that stream send `Accept: text/event-stream`; the streamed body is written by the view
itself, and every other answer, errors included, is JSON whatever the Accept header says,
as OpenAI's API does. Refusing such requests with 406 would break those clients.
"""

from rest_framework.negotiation import DefaultContentNegotiation


class JsonAlwaysNegotiation(DefaultContentNegotiation):
    def select_renderer(self, request, renderers, format_suffix=None):
        renderer = renderers[0]
        return renderer, renderer.media_type
