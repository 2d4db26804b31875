"""What the reservation covers beyond the prompt: reasoning tokens, and one choice only."""

from decimal import Decimal

import pytest

from llmops.api.serializers import ChatCompletionInputSerializer
from routing.models import ModelProfile
from routing.policy import output_limit
from routing.pricing import max_cost, usage_cost


def profile(**fields) -> ModelProfile:
    values = {"input_price_per_token": Decimal("0.000002"),
              "output_price_per_token": Decimal("0.000008"),
              "reasoning_price_per_token": Decimal("0.00003"), "max_output_tokens": 500}
    values.update(fields)
    return ModelProfile(name="r", provider="openai", upstream_model="o4-mini", **values)


@pytest.mark.parametrize("requested", [None, 1, 120, 500, 10_000])
@pytest.mark.parametrize("reasoning_price", [None, "0.000001", "0.00003"])
def test_reasoning_tokens_inside_the_output_limit_never_exceed_the_reservation(
        requested, reasoning_price):
    """Reasoning tokens are part of the completion tokens the output limit caps (OpenAI's
    max_completion_tokens, Anthropic's max_tokens with thinking); the reservation prices every
    output token at the dearer of the output and reasoning prices."""
    p = profile(reasoning_price_per_token=reasoning_price and Decimal(reasoning_price))
    limit = output_limit(p, requested=requested, default=None)
    assert limit == min(requested or p.max_output_tokens, p.max_output_tokens)
    reserved = max_cost(p, prompt_tokens=100, max_output_tokens=limit)
    for completion in {0, limit // 2, limit}:
        for reasoning in {0, completion // 3, completion}:
            charged = usage_cost(p, prompt_tokens=100, completion_tokens=completion,
                                 reasoning_tokens=reasoning)
            assert charged <= reserved, (completion, reasoning)


def test_all_reasoning_at_the_dearest_price_is_exactly_the_reservation():
    p = profile()
    reserved = max_cost(p, prompt_tokens=100, max_output_tokens=500)
    assert usage_cost(p, prompt_tokens=100, completion_tokens=500,
                      reasoning_tokens=500) == reserved


@pytest.mark.parametrize("n", [2, 3, 128])
def test_more_than_one_choice_is_refused_before_any_reservation(n):
    """The reservation is for one answer: n > 1 would bill n completions."""
    serializer = ChatCompletionInputSerializer(data={
        "model": "auto", "n": n, "messages": [{"role": "user", "content": "hi"}]})
    assert not serializer.is_valid()
    assert "n > 1 is not supported" in str(serializer.errors["n"][0])


@pytest.mark.parametrize("n", [None, 1])
def test_one_choice_is_accepted(n):
    data = {"model": "auto", "messages": [{"role": "user", "content": "hi"}]}
    if n is not None:
        data["n"] = n
    assert ChatCompletionInputSerializer(data=data).is_valid()
