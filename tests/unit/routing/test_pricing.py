"""Cost arithmetic (routing/pricing.py) against hand-computed values, for every price field."""

from decimal import Decimal

import pytest

from routing.models import ModelProfile
from routing.pricing import max_cost, usage_cost

D = Decimal


def profile(input_="0.0000025", output="0.00001", cached=None, reasoning=None) -> ModelProfile:
    return ModelProfile(
        name="p", provider="simulated", upstream_model="p",
        input_price_per_token=D(input_), output_price_per_token=D(output),
        cached_input_price_per_token=None if cached is None else D(cached),
        reasoning_price_per_token=None if reasoning is None else D(reasoning),
    )


class TestUsageCost:
    def test_input_and_output_only(self):
        # 1000 × $2.50/M + 500 × $10/M = 0.0025 + 0.005
        assert usage_cost(profile(), prompt_tokens=1000, completion_tokens=500) == D("0.0075")
        # 1000 × $2/M + 500 × $8/M = 0.002 + 0.004
        assert usage_cost(profile("0.000002", "0.000008"), prompt_tokens=1000,
                          completion_tokens=500) == D("0.006000000000")

    def test_cached_tokens_are_part_of_the_prompt_and_charged_once_at_the_cached_price(self):
        p = profile(cached="0.00000125")
        # 600 × 2.5/M + 400 × 1.25/M + 500 × 10/M = 0.0015 + 0.0005 + 0.005
        assert usage_cost(p, prompt_tokens=1000, completion_tokens=500,
                          cached_tokens=400) == D("0.0070")
        p = profile("0.000002", "0.000008", cached="0.0000005")
        # 600 uncached × 0.000002 = 0.0012; 400 cached × 0.0000005 = 0.0002; 0 output
        assert usage_cost(p, prompt_tokens=1000, completion_tokens=0,
                          cached_tokens=400) == D("0.001400000000")

    def test_cached_tokens_without_a_cached_price_cost_the_input_price(self):
        assert usage_cost(profile(), prompt_tokens=1000, completion_tokens=0,
                          cached_tokens=400) == D("0.0025")
        assert usage_cost(profile("0.000002", "0.000008"), prompt_tokens=1000,
                          completion_tokens=0, cached_tokens=400) == D("0.002000000000")

    def test_reasoning_tokens_are_part_of_the_completion_at_their_own_price(self):
        p = profile(reasoning="0.00002")
        # 1000 × 2.5/M + 300 × 10/M + 200 × 20/M = 0.0025 + 0.003 + 0.004
        assert usage_cost(p, prompt_tokens=1000, completion_tokens=500,
                          reasoning_tokens=200) == D("0.0095")
        p = profile("0.000002", "0.000008", reasoning="0.00001")
        # 300 × 0.000008 = 0.0024 visible output; 200 × 0.00001 = 0.002 reasoning
        assert usage_cost(p, prompt_tokens=0, completion_tokens=500,
                          reasoning_tokens=200) == D("0.004400000000")

    def test_reasoning_tokens_without_a_reasoning_price_cost_the_output_price(self):
        assert usage_cost(profile(), prompt_tokens=0, completion_tokens=500,
                          reasoning_tokens=200) == D("0.005")

    def test_every_price_field_at_once(self):
        p = profile(cached="0.00000125", reasoning="0.00002")
        # 0.0015 + 0.0005 + 0.003 + 0.004
        assert usage_cost(p, prompt_tokens=1000, completion_tokens=500, cached_tokens=400,
                          reasoning_tokens=200) == D("0.0090")
        p = profile("0.000002", "0.000008", cached="0.0000005", reasoning="0.00001")
        # 900×0.000002 + 100×0.0000005 + 150×0.000008 + 50×0.00001
        # = 0.0018 + 0.00005 + 0.0012 + 0.0005 = 0.00355
        assert usage_cost(p, prompt_tokens=1000, completion_tokens=200, cached_tokens=100,
                          reasoning_tokens=50) == D("0.003550000000")

    def test_real_price_sheet_gpt_4o_mini(self):
        p = profile(input_="0.00000015", output="0.0000006", cached="0.000000075")
        # (10297 × 0.15 + 2048 × 0.075 + 678 × 0.6) / 1e6 = 2104.95 / 1e6
        assert usage_cost(p, prompt_tokens=12345, completion_tokens=678,
                          cached_tokens=2048) == D("0.00210495")

    def test_counts_out_of_range_are_clamped_never_double_counted(self):
        p = profile(cached="0.00000125", reasoning="0.00002")
        # cached > prompt: all 100 prompt tokens at the cached price, none at the input price.
        assert usage_cost(p, prompt_tokens=100, completion_tokens=0,
                          cached_tokens=500) == D("0.000125")
        assert usage_cost(p, prompt_tokens=0, completion_tokens=10,
                          reasoning_tokens=50) == D("0.0002")
        assert usage_cost(p, prompt_tokens=10, completion_tokens=0,
                          cached_tokens=-5) == D("0.000025")
        assert usage_cost(profile("0.000002", "0.000008", cached="0"), prompt_tokens=10,
                          completion_tokens=0, cached_tokens=50) == D(0)

    def test_ledger_precision_is_one_picodollar(self):
        p = profile(input_="0.0000000000004", output="0")
        assert usage_cost(p, prompt_tokens=1, completion_tokens=0) == D("0E-12")
        assert usage_cost(p, prompt_tokens=3, completion_tokens=0) == D("0.000000000001")
        assert usage_cost(p, prompt_tokens=1, completion_tokens=0).as_tuple().exponent == -12
        p = profile(input_="0.00000015", output="0.0000006")
        assert usage_cost(p, prompt_tokens=1, completion_tokens=1) == D("0.000000750000")


class TestMaxCost:
    def test_upper_bound_uses_the_dearest_input_and_output_prices(self):
        p = profile(cached="0.00000125", reasoning="0.00002")
        # 1000 × 2.5/M + 4096 × 20/M = 0.0025 + 0.08192
        assert max_cost(p, prompt_tokens=1000, max_output_tokens=4096) == D("0.08442")
        p = profile("0.000002", "0.000008", cached="0.0000005", reasoning="0.00001")
        # 1000 × 0.000002 + 100 × max(0.000008, 0.00001)
        assert max_cost(p, prompt_tokens=1000, max_output_tokens=100) == D("0.003000000000")

    def test_a_cached_price_above_the_input_price_is_the_bound(self):
        p = profile(cached="0.000003")
        assert max_cost(p, prompt_tokens=1000, max_output_tokens=0) == D("0.003")

    @pytest.mark.parametrize("cached,reasoning", [(None, None), ("0.00000125", None),
                                                  (None, "0.00002"), ("0.000003", "0.000001"),
                                                  ("0.0000005", "0.000004")])
    def test_never_below_any_actual_cost_within_the_bounds(self, cached, reasoning):
        p = profile(cached=cached, reasoning=reasoning)
        prompt, max_out = 700, 300
        bound = max_cost(p, prompt_tokens=prompt, max_output_tokens=max_out)
        for completion in (0, 150, 300):
            for cached_n in (0, 350, 700):
                for reasoning_n in (0, completion // 2, completion):
                    actual = usage_cost(p, prompt_tokens=prompt, completion_tokens=completion,
                                        cached_tokens=cached_n, reasoning_tokens=reasoning_n)
                    assert actual <= bound
