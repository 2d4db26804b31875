"""The small-budget clamp: how many output tokens a refusing budget's remainder still covers."""

from decimal import Decimal

from budgets.errors import BudgetExceeded
from llmops.gateway.admission import MIN_CLAMPED_OUTPUT_TOKENS, affordable_output_tokens
from tests.unit.gateway.factories import profile, request


def refused(remaining: str | None) -> BudgetExceeded:
    extra = {} if remaining is None else {"remaining": remaining}
    return BudgetExceeded("over budget", extra=extra)


def prompt_of(tokens: dict[str, int], **fields):
    ctx = request(**fields)
    ctx.prompt_bounds = tokens
    return ctx


class TestAffordableOutputTokens:
    def test_the_remainder_after_the_prompt_buys_output_tokens(self):
        # $0.004 left, the prompt costs 1000 × $0.000001, each output token $0.000002.
        ctx = prompt_of({"m": 1000})
        assert affordable_output_tokens(ctx, [profile()], refused("0.004")) == 1500

    def test_the_dearest_model_of_the_chain_decides(self):
        cheap, dear = profile("cheap"), profile("dear", input_price="0.000002",
                                               output_price="0.00001")
        ctx = prompt_of({"cheap": 1000, "dear": 500})
        # dear: (0.004 − 500 × 0.000002) / 0.00001 = 300; cheap would allow 1500.
        assert affordable_output_tokens(ctx, [cheap, dear], refused("0.004")) == 300

    def test_a_fraction_of_a_token_rounds_down(self):
        ctx = prompt_of({"m": 0})
        assert affordable_output_tokens(ctx, [profile()], refused("0.0000999")) == 49

    def test_no_clamp_when_the_client_chose_max_tokens(self):
        ctx = prompt_of({"m": 1000}, max_output_tokens=2000)
        assert affordable_output_tokens(ctx, [profile()], refused("0.004")) is None

    def test_no_clamp_below_the_minimum_answer(self):
        ctx = prompt_of({"m": 0})
        at_minimum = Decimal("0.000002") * MIN_CLAMPED_OUTPUT_TOKENS
        assert affordable_output_tokens(ctx, [profile()], refused(str(at_minimum))) == \
            MIN_CLAMPED_OUTPUT_TOKENS
        below = at_minimum - Decimal("0.000002")
        assert affordable_output_tokens(ctx, [profile()], refused(str(below))) is None

    def test_no_clamp_when_the_prompt_alone_is_over(self):
        ctx = prompt_of({"m": 5000})
        assert affordable_output_tokens(ctx, [profile()], refused("0.004")) is None

    def test_no_clamp_when_it_would_not_lower_the_limit(self):
        # The team's default already asks for fewer tokens than the remainder covers.
        ctx = prompt_of({"m": 1000}, default_max_tokens=1000)
        assert affordable_output_tokens(ctx, [profile()], refused("0.004")) is None
        small_model = profile(max_output_tokens=1200)
        assert affordable_output_tokens(prompt_of({"m": 1000}), [small_model],
                                        refused("0.004")) is None

    def test_no_clamp_without_a_remainder_or_with_free_output(self):
        ctx = prompt_of({"m": 1000})
        assert affordable_output_tokens(ctx, [profile()], refused(None)) is None
        assert affordable_output_tokens(ctx, [profile(output_price="0")], refused("1")) is None
