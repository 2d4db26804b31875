"""Cost arithmetic with hand-computed values for every price field."""

from decimal import Decimal

from routing.models import ModelProfile
from routing.pricing import max_cost, usage_cost


def profile(**prices) -> ModelProfile:
    fields = {"input_price_per_token": Decimal("0.000002"),
              "output_price_per_token": Decimal("0.000008")}
    fields.update({k: Decimal(v) if v is not None else None for k, v in prices.items()})
    return ModelProfile(name="p", provider="openai", upstream_model="p", **fields)


class TestUsageCost:
    def test_input_and_output(self):
        # 1000 × 0.000002 + 500 × 0.000008 = 0.002 + 0.004
        assert usage_cost(profile(), prompt_tokens=1000, completion_tokens=500) == Decimal(
            "0.006000000000")

    def test_cached_tokens_are_part_of_prompt_at_cached_price(self):
        p = profile(cached_input_price_per_token="0.0000005")
        # 600 uncached × 0.000002 = 0.0012; 400 cached × 0.0000005 = 0.0002; 0 output
        assert usage_cost(p, prompt_tokens=1000, completion_tokens=0,
                          cached_tokens=400) == Decimal("0.001400000000")

    def test_cached_without_cached_price_costs_input_price(self):
        assert usage_cost(profile(), prompt_tokens=1000, completion_tokens=0,
                          cached_tokens=400) == Decimal("0.002000000000")

    def test_reasoning_tokens_are_part_of_completion_at_reasoning_price(self):
        p = profile(reasoning_price_per_token="0.00001")
        # 300 × 0.000008 = 0.0024 visible output; 200 × 0.00001 = 0.002 reasoning
        assert usage_cost(p, prompt_tokens=0, completion_tokens=500,
                          reasoning_tokens=200) == Decimal("0.004400000000")

    def test_every_field_together(self):
        p = profile(cached_input_price_per_token="0.0000005",
                    reasoning_price_per_token="0.00001")
        # 900×0.000002 + 100×0.0000005 + 150×0.000008 + 50×0.00001
        # = 0.0018 + 0.00005 + 0.0012 + 0.0005 = 0.00355
        assert usage_cost(p, prompt_tokens=1000, completion_tokens=200, cached_tokens=100,
                          reasoning_tokens=50) == Decimal("0.003550000000")

    def test_counts_beyond_totals_are_clamped(self):
        p = profile(cached_input_price_per_token="0")
        assert usage_cost(p, prompt_tokens=10, completion_tokens=0,
                          cached_tokens=50) == Decimal(0)

    def test_tiny_prices_keep_ledger_precision(self):
        p = profile(input_price_per_token="0.00000015", output_price_per_token="0.0000006")
        assert usage_cost(p, prompt_tokens=1, completion_tokens=1) == Decimal("0.000000750000")


class TestMaxCost:
    def test_is_every_token_at_its_dearest_price(self):
        p = profile(cached_input_price_per_token="0.0000005",
                    reasoning_price_per_token="0.00001")
        # 1000 × 0.000002 + 100 × max(0.000008, 0.00001)
        assert max_cost(p, prompt_tokens=1000, max_output_tokens=100) == Decimal(
            "0.003000000000")

    def test_never_below_any_actual_usage(self):
        p = profile(cached_input_price_per_token="0.0000005",
                    reasoning_price_per_token="0.000004")
        bound = max_cost(p, prompt_tokens=500, max_output_tokens=300)
        for cached in (0, 250, 500):
            for reasoning in (0, 150, 300):
                assert usage_cost(p, prompt_tokens=500, completion_tokens=300,
                                  cached_tokens=cached, reasoning_tokens=reasoning) <= bound
