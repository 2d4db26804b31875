"""End to end: the official openai SDK's `embeddings.create` against the live gateway, with
embedding profiles on the fake provider and the gateway's own MiniLM."""

import base64
import uuid
from decimal import Decimal

import httpx
import numpy as np
import openai
import pytest

from budgets.models import UsageRecord
from tests.toolkit.fakeprovider import fake_tokens, fake_vector

PRICE = Decimal("0.0000001")


@pytest.fixture
def embed_profile(fake_profile):
    """`emb-small` on the fake provider (upstream `text-embedding-fake`), priced per input."""
    return fake_profile("emb-small", upstream="text-embedding-fake", mode="embedding",
                        input_price_per_token=str(PRICE), output_price_per_token="0",
                        max_output_tokens=0, context_window=8191)


@pytest.fixture
def cache_on(settings):
    settings.ENABLE_SEMANTIC_CACHE = True


@pytest.fixture
def gateway_http(live_gateway, api_key):
    with httpx.Client(base_url=live_gateway.url, timeout=30,
                      headers={"Authorization": f"Bearer {api_key.key}"}) as client:
        yield client


def _unique(text: str = "embed me") -> str:
    return f"{text} {uuid.uuid4().hex[:10]}"


def _record(response) -> UsageRecord:
    return UsageRecord.objects.get(request_id=response.usage.model_extra["llmops"]["request_id"])


def test_string_default_base64_is_decoded_by_the_sdk(openai_client, embed_profile,
                                                       fake_provider):
    text = _unique()
    response = openai_client.embeddings.create(model="emb-small", input=text)
    assert fake_provider.last_request.path == "/v1/embeddings"
    assert response.object == "list" and response.model == "emb-small"
    vector = np.asarray(response.data[0].embedding, dtype=np.float32)
    np.testing.assert_allclose(vector, fake_vector("text-embedding-fake", text), rtol=1e-6)
    assert response.usage.prompt_tokens == response.usage.total_tokens == fake_tokens(text)
    record = _record(response)
    assert record.endpoint == "embeddings" and record.status == "ok"
    assert record.prompt_tokens == fake_tokens(text) and record.completion_tokens == 0
    assert record.cost == PRICE * fake_tokens(text)
    assert record.estimated_prompt_tokens >= record.prompt_tokens


def test_list_float_and_base64_agree(openai_client, embed_profile):
    texts = [_unique("first"), _unique("second"), _unique("third")]
    floats = openai_client.embeddings.create(model="emb-small", input=texts,
                                             encoding_format="float")
    assert [d.index for d in floats.data] == [0, 1, 2]
    raw = openai_client.embeddings.with_raw_response.create(
        model="emb-small", input=texts, encoding_format="base64").http_response.json()
    for item, text in zip(raw["data"], texts, strict=True):
        decoded = np.frombuffer(base64.b64decode(item["embedding"]), dtype="<f4")
        np.testing.assert_array_equal(decoded, fake_vector("text-embedding-fake", text))
        np.testing.assert_allclose(floats.data[item["index"]].embedding, decoded, rtol=1e-6)


def test_token_arrays_and_dimensions(openai_client, embed_profile, fake_provider):
    single = openai_client.embeddings.create(model="emb-small", input=[1, 2, 3], dimensions=8)
    assert len(single.data) == 1 and len(single.data[0].embedding) == 8
    assert single.usage.prompt_tokens == 3
    assert fake_provider.last_request.body["dimensions"] == 8
    batch = openai_client.embeddings.create(model="emb-small", input=[[5, 6], [7, 8, 9]])
    assert [len(d.embedding) for d in batch.data] == [1536, 1536]
    assert batch.usage.prompt_tokens == 5
    assert _record(batch).estimated_prompt_tokens == 5  # a token array bounds itself


def test_repeat_is_a_cache_hit_with_a_ledger_row(openai_client, embed_profile, fake_provider,
                                                 cache_on):
    texts = [_unique("cached a"), _unique("cached b")]
    first = openai_client.embeddings.create(model="emb-small", input=texts)
    calls = len(fake_provider.requests)
    raw = openai_client.embeddings.with_raw_response.create(model="emb-small", input=texts)
    again = raw.parse()
    assert raw.headers["x-llmops-cache"] == "hit_exact"
    assert len(fake_provider.requests) == calls  # nothing went upstream
    assert [d.embedding for d in again.data] == [d.embedding for d in first.data]
    record = _record(again)
    assert record.cache_status == "hit_exact" and record.cost == 0
    assert record.cost_saved == _record(first).cost
    assert record.endpoint == "embeddings"

    # A batch with one new input sends only that one upstream.
    new = _unique("cached c")
    mixed = openai_client.embeddings.create(model="emb-small", input=[texts[0], new])
    assert fake_provider.last_request.body["input"] == [new]
    np.testing.assert_allclose(mixed.data[1].embedding,
                               fake_vector("text-embedding-fake", new), rtol=1e-6)
    assert _record(mixed).cost == PRICE * fake_tokens(new)

    # Another dimensions is another entry; no-cache skips the lookup.
    openai_client.embeddings.create(model="emb-small", input=texts, dimensions=16)
    assert fake_provider.last_request.body["input"] == texts
    skipped = openai_client.embeddings.with_raw_response.create(
        model="emb-small", input=texts, extra_headers={"Cache-Control": "no-cache"})
    assert skipped.headers["x-llmops-cache"] == "bypass"


def test_budget_refusal_is_openai_shaped(openai_client, embed_profile, api_key):
    from budgets.services import budget_set

    budget_set(scope="team", team=api_key.api_key.team, daily_limit=Decimal("0.0000001"))
    with pytest.raises(openai.APIStatusError) as excinfo:
        openai_client.embeddings.create(model="emb-small", input=_unique("x " * 50))
    assert excinfo.value.status_code == 402
    assert excinfo.value.body["type"] == "insufficient_quota"
    assert excinfo.value.body["code"] == "budget_exceeded"
    assert not UsageRecord.objects.filter(endpoint="embeddings").exists()


def test_local_minilm_needs_no_provider(openai_client, local_embedding_profile):
    from semcache.embedder import get_embedder

    texts = ["What is a semantic cache?", "Wie spät ist es?"]
    response = openai_client.embeddings.create(model="llmops-minilm", input=texts)
    expected = get_embedder().embed_sync(texts)
    for item, vector in zip(response.data, expected, strict=True):
        np.testing.assert_allclose(item.embedding, vector, atol=1e-6)
    assert len(response.data[0].embedding) == 384
    assert _record(response).cost == 0
    with pytest.raises(openai.BadRequestError) as excinfo:
        openai_client.embeddings.create(model="llmops-minilm", input="x", dimensions=64)
    assert excinfo.value.body["param"] == "dimensions"


def test_embedding_and_chat_models_are_not_confused(openai_client, embed_profile):
    with pytest.raises(openai.BadRequestError) as excinfo:
        openai_client.embeddings.create(model="simulated-standard", input="hello")
    assert excinfo.value.body["code"] == "model_not_embedding"
    with pytest.raises(openai.BadRequestError) as excinfo:
        openai_client.chat.completions.create(
            model="emb-small", messages=[{"role": "user", "content": "hello"}])
    assert excinfo.value.body["code"] == "model_not_chat"
    reply = openai_client.chat.completions.create(
        model="auto", messages=[{"role": "user", "content": "hello"}])
    assert reply.model.startswith("simulated-")  # auto never picks an embedding model
    ids = [m.id for m in openai_client.models.list()]
    assert "emb-small" in ids
    assert not UsageRecord.objects.filter(endpoint="embeddings").exists()


@pytest.mark.parametrize(("body", "param_hint"), [
    ({"input": ""}, "empty"),
    ({"input": []}, "input"),
    ({"input": ["ok", ""]}, "input[1]"),
    ({"input": ["x"] * 2049}, "2048"),
    ({"input": [[1, 2], [100277]]}, "100277"),
    ({"input": [-1]}, "-1"),
    ({"input": ["a", 1]}, "input"),
    ({"input": "a", "encoding_format": "int8"}, "encoding_format"),
    ({"input": "word " * 9000}, "context"),
])
def test_bad_input_is_a_400(gateway_http, embed_profile, body, param_hint):
    response = gateway_http.post("/v1/embeddings", json={"model": "emb-small", **body})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert param_hint in error["message"] or param_hint == error.get("param")
