"""Shared helpers for the adapter tests: build calls, drain streams, load cassettes."""

import json
from pathlib import Path

import pytest

from llmops.providers import errors
from llmops.providers.base import Completion, Delta, ProviderAdapter, ProviderCall
from llmops.providers.errors import ProviderError

CASSETTES = Path(__file__).resolve().parents[2] / "cassettes" / "providers"
API_KEY = "sk-test-SECRET-0123456789"


def make_call(base_url: str, model: str = "gpt-test", **overrides) -> ProviderCall:
    """Return a call to `model` at `base_url` with a short two-message prompt."""
    fields = {
        "upstream_model": model,
        "messages": [{"role": "system", "content": "You are terse."},
                     {"role": "user", "content": "Say hello to the gateway"}],
        "base_url": base_url,
        "api_key": API_KEY,
    }
    fields.update(overrides)
    return ProviderCall(**fields)


async def drain(
    adapter: ProviderAdapter, call: ProviderCall
) -> tuple[list[Delta], ProviderError | None]:
    """Return the deltas a stream yielded and the error that ended it (None if it finished)."""
    deltas: list[Delta] = []
    try:
        async for delta in adapter.stream(call):
            deltas.append(delta)
    except ProviderError as exc:
        return deltas, exc
    return deltas, None


def text_of(deltas: list[Delta]) -> str:
    return "".join(d.content for d in deltas)


def cassette(name: str) -> dict:
    return json.loads((CASSETTES / f"{name}.json").read_text())


async def complete_or_stream(adapter: ProviderAdapter, call: ProviderCall, *, stream: bool) -> None:
    """Complete `call`, or read its stream to the end: a failure raises either way."""
    if stream:
        [_ async for _ in adapter.stream(call)]
    else:
        await adapter.complete(call)


async def stream_and_complete(adapter: ProviderAdapter,
                              call: ProviderCall) -> tuple[list[Delta], Completion]:
    """Stream `call`, then complete it; assert the stream says what the completion says (the
    role first, the same text, the finish and the usage last); return both."""
    deltas, error = await drain(adapter, call)
    completion = await adapter.complete(call)
    assert error is None
    assert deltas[0].role == "assistant" and deltas[0].content == "Echo:"
    assert text_of(deltas) == completion.message["content"]
    assert deltas[-1].finish_reason == "stop"
    assert deltas[-1].usage == completion.usage
    return deltas, completion


class TransportErrorTests:
    """Transport failures every adapter maps alike, streamed or not. A test class that inherits
    these sets `adapter` and the `model` it calls."""

    adapter: ProviderAdapter
    model: str

    @pytest.mark.parametrize("stream", [False, True])
    async def test_slow_first_byte_is_timeout(self, fake_provider, settings, stream):
        settings.PROVIDER_READ_TIMEOUT_SECONDS = 0.2
        call = make_call(fake_provider.base_url, "fake-slow-1500")
        with pytest.raises(errors.ProviderTimeout):
            await complete_or_stream(self.adapter, call, stream=stream)

    @pytest.mark.parametrize("stream", [False, True])
    async def test_connection_refused(self, fake_provider, stream):
        call = make_call(fake_provider.refused_url, self.model)
        with pytest.raises(errors.ProviderConnectionError):
            await complete_or_stream(self.adapter, call, stream=stream)


#: HTTP error statuses and the typed error each maps to, for every adapter over HTTP.
STATUS_ERRORS = [
    (400, errors.ProviderBadRequest), (404, errors.ProviderBadRequest),
    (422, errors.ProviderBadRequest), (401, errors.ProviderAuthError),
    (403, errors.ProviderAuthError), (429, errors.ProviderRateLimited),
    (500, errors.ProviderServerError), (503, errors.ProviderServerError),
]


class StatusErrorTests:
    """An HTTP error answer maps to its typed error, streamed or not, with the provider's
    message kept, the key scrubbed and Retry-After read. A test class that inherits these sets
    `adapter` and uses the fake provider's OpenAI-shaped error bodies."""

    adapter: ProviderAdapter

    @pytest.mark.parametrize("stream", [False, True])
    @pytest.mark.parametrize(("status", "error_class"), STATUS_ERRORS)
    async def test_status_maps_to_error(self, fake_provider, status, error_class, stream):
        call = make_call(fake_provider.base_url, f"fake-error-{status}-ra-3")
        with pytest.raises(error_class) as caught:
            await complete_or_stream(self.adapter, call, stream=stream)
        assert caught.value.status == status
        assert "fake provider error" in caught.value.message  # the provider's message is kept
        assert API_KEY not in str(caught.value)
        if status == 429:
            assert caught.value.retry_after == 3.0
