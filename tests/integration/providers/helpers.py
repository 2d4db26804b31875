"""Shared helpers for the adapter tests: build calls, drain streams, load cassettes."""

import json
from pathlib import Path

from llmops.providers.base import Delta, ProviderAdapter, ProviderCall
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
