"""Retry-After parsing and HTTP status → typed provider error mapping."""

import email.utils

import httpx
import pytest

from llmops.providers import errors
from llmops.providers.errors import error_for_status, parse_retry_after, scrub


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
