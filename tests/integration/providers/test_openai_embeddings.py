"""The OpenAI-compatible adapters' `embed` against the fake provider over real HTTP."""

import base64

import numpy as np
import pytest

from llmops.providers import errors
from llmops.providers.base import Usage
from llmops.providers.openai_chat import OpenAIChatAdapter, parse_embeddings
from tests.integration.providers.helpers import API_KEY, make_call
from tests.toolkit.fakeprovider import Behavior, fake_tokens, fake_vector

adapter = OpenAIChatAdapter()


def _call(base_url, inputs, model="text-embedding-fake", **params):
    return make_call(base_url, model, messages=[], params={"input": inputs, **params},
                     request_id="req-emb-1")


async def test_vectors_usage_and_request(fake_provider):
    texts = ["hello gateway", "another input"]
    result = await adapter.embed(_call(fake_provider.base_url, texts, dimensions=32,
                                       user="u1"))
    assert len(result.vectors) == 2
    for vector, text in zip(result.vectors, texts, strict=True):
        np.testing.assert_allclose(vector, fake_vector("text-embedding-fake", text, 32),
                                   rtol=1e-6)
    assert result.usage == Usage(prompt_tokens=sum(fake_tokens(t) for t in texts))
    sent = fake_provider.last_request
    assert sent.path == "/v1/embeddings"
    assert sent.body == {"model": "text-embedding-fake", "input": texts,
                         "encoding_format": "float", "dimensions": 32, "user": "u1"}
    assert sent.headers["x-request-id"] == "req-emb-1" and sent.sent_key(API_KEY)


@pytest.mark.parametrize(("behavior", "error"), [
    (Behavior(status=500), errors.ProviderServerError),
    (Behavior(status=400), errors.ProviderBadRequest),
    (Behavior(status=429), errors.ProviderRateLimited),
    (Behavior(malformed=True), errors.ProviderMalformedResponse),
    (Behavior(missing_fields=True), errors.ProviderMalformedResponse),
    (Behavior(drop=True), errors.ProviderConnectionError),
])
async def test_failures_are_typed(fake_provider, behavior, error):
    fake_provider.enqueue(behavior)
    with pytest.raises(error):
        await adapter.embed(_call(fake_provider.base_url, ["x"]))


async def test_missing_usage_is_none(fake_provider):
    fake_provider.enqueue(Behavior(usage=False))
    assert (await adapter.embed(_call(fake_provider.base_url, ["x"]))).usage is None


def test_parse_base64_out_of_order_and_bad_bodies():
    first, second = np.arange(4, dtype="<f4"), np.ones(4, dtype="<f4")
    payload = {"data": [
        {"index": 1, "embedding": base64.b64encode(second.tobytes()).decode()},
        {"index": 0, "embedding": first.tolist()}], "usage": {"prompt_tokens": 3}}
    parsed = parse_embeddings(payload, count=2)
    np.testing.assert_array_equal(parsed.vectors[0], first)
    np.testing.assert_array_equal(parsed.vectors[1], second)
    for bad in ({"data": [{"index": 0, "embedding": [1.0]}]},
                {"data": [{"index": 0, "embedding": [1.0]}, {"index": 0, "embedding": [1.0]}]},
                {"data": [{"index": 0, "embedding": [1.0]}, {"index": 1, "embedding": [1, 2]}]},
                {"data": [{"index": 0, "embedding": []}, {"index": 1, "embedding": []}]}):
        with pytest.raises(errors.ProviderMalformedResponse):
            parse_embeddings(bad, count=2)
