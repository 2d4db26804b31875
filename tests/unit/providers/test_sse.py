"""The shared SSE parser, Retry-After parsing and HTTP status → error mapping."""

import email.utils

import httpx
import pytest

from llmops.providers import errors
from llmops.providers.sse import SSEEvent, error_for_status, parse_retry_after, parse_sse, scrub


async def _lines(text: str):
    for line in text.split("\n"):
        yield line


async def _events(text: str) -> list[SSEEvent]:
    return [event async for event in parse_sse(_lines(text))]


class TestParseSSE:
    async def test_events_names_comments_and_multiline_data(self):
        text = (": keep-alive\n\nevent: message_start\ndata: {\"a\":\n"
                "data: 1}\n\ndata:[DONE]\n\nid: 7\nretry: 10\n\n")
        assert await _events(text) == [SSEEvent("message_start", '{"a":\n1}'),
                                       SSEEvent("message", "[DONE]")]

    async def test_unterminated_last_event_is_kept(self):
        assert await _events("data: [DONE]") == [SSEEvent("message", "[DONE]")]


class TestRetryAfter:
    @pytest.mark.parametrize(("headers", "expected"), [
        ({"retry-after": "7"}, 7.0),
        ({"retry-after": "1.5"}, 1.5),
        ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),
        ({"retry-after": "soon"}, None),
        ({}, None),
        ({"retry-after": "-3"}, 0.0),
    ])
    def test_seconds(self, headers, expected):
        assert parse_retry_after(httpx.Headers(headers)) == expected

    def test_http_date(self):
        now = 1_700_000_000.0
        value = email.utils.formatdate(now + 120, usegmt=True)
        assert parse_retry_after(httpx.Headers({"retry-after": value}), now=now) == 120.0
        past = email.utils.formatdate(now - 120, usegmt=True)
        assert parse_retry_after(httpx.Headers({"retry-after": past}), now=now) == 0.0


class TestErrorForStatus:
    @pytest.mark.parametrize(("status", "error_class"), [
        (400, errors.ProviderBadRequest), (404, errors.ProviderBadRequest),
        (422, errors.ProviderBadRequest), (401, errors.ProviderAuthError),
        (403, errors.ProviderAuthError), (408, errors.ProviderTimeout),
        (429, errors.ProviderRateLimited), (500, errors.ProviderServerError),
        (502, errors.ProviderServerError), (529, errors.ProviderServerError),
    ])
    def test_mapping(self, status, error_class):
        error = error_for_status(status, httpx.Headers(), b"", provider="p", secret="")
        assert type(error) is error_class and error.status == status

    def test_provider_message_kept_and_key_scrubbed(self):
        body = b'{"error": {"message": "Incorrect API key provided: sk-live-123", "type": "x"}}'
        error = error_for_status(401, httpx.Headers(), body, provider="openai",
                                 secret="sk-live-123")
        assert "sk-live-123" not in str(error)
        assert "Incorrect API key provided: [redacted]" in error.message

    def test_anthropic_and_plain_bodies(self):
        anthropic = b'{"type": "error", "error": {"type": "overloaded_error", "message": "Busy"}}'
        assert "Busy" in error_for_status(529, httpx.Headers(), anthropic, provider="a",
                                          secret="").message
        assert "Bad Gateway" in error_for_status(502, httpx.Headers(), b"Bad Gateway",
                                                 provider="a", secret="").message

    def test_scrub_bounds_length(self):
        assert len(scrub("x" * 5000, "")) == 300
