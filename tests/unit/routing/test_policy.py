"""The auto-routing policy as pure functions: screening, choice, budget downgrade, fallbacks."""

from decimal import Decimal

import numpy as np
import pytest

from routing import policy
from routing.hints import parse_hints
from routing.models import ModelProfile
from routing.router import required_quality

LEVELS = {"simple": 0.55, "moderate": 0.7, "complex": 0.8}


def make(name, tier, price_in, price_out, **fields) -> ModelProfile:
    defaults = dict(provider="openai", upstream_model=name, tier=tier,
                    input_price_per_token=Decimal(price_in),
                    output_price_per_token=Decimal(price_out), context_window=128000,
                    max_output_tokens=16384, typical_latency_ms=800, supports_tools=True,
                    supports_json_mode=True, supports_vision=True)
    defaults.update(fields)
    return ModelProfile(name=name, **defaults)


@pytest.fixture
def trio():
    return [make("cheap", "efficient", "0.00000015", "0.0000006"),
            make("mid", "standard", "0.0000004", "0.0000016"),
            make("dear", "premium", "0.0000025", "0.00001")]


def needs(prompt=100, **kw) -> policy.Needs:
    return policy.Needs(prompt_tokens={"openai": prompt, "anthropic": prompt}, **kw)


PRED = {"cheap": 0.62, "mid": 0.74, "dear": 0.86}


def choose(candidates, predicted=PRED, min_quality=0.7, remaining=None, **kw):
    return policy.choose(candidates, predicted, needs(**kw), policy.Limits(min_quality),
                         budget_remaining=remaining, low_usd=1.0, low_calls=20,
                         budget_discount=0.15)


class TestScreen:
    def test_capabilities(self, trio):
        trio[0].supports_tools = False
        trio[1].supports_vision = False
        result = policy.screen(trio, needs(tools=True, vision=True), policy.Limits(0.5),
                               cooling=set())
        assert [p.name for p in result.eligible] == ["dear"]
        assert result.rejected == {"cheap": "capability:tools", "mid": "capability:vision"}

    def test_context_window_and_max_output(self, trio):
        trio[0].context_window = 4000
        trio[1].max_output_tokens = 1000
        result = policy.screen(trio, needs(prompt=3500, max_output_tokens=2000),
                               policy.Limits(0.5), cooling=set())
        assert [p.name for p in result.eligible] == ["dear"]
        assert result.rejected["cheap"].startswith("context:prompt")
        assert "max output" in result.rejected["mid"]

    def test_cooldown(self, trio):
        result = policy.screen(trio, needs(), policy.Limits(0.5), cooling={"mid"})
        assert result.rejected == {"mid": "cooldown"}

    def test_latency_uses_observed_p95_over_hint(self, trio):
        trio[0].typical_latency_ms = 300
        trio[0].observed_latency_p95_ms = 2500  # observed beats the optimistic hint
        trio[1].typical_latency_ms = 900
        trio[2].typical_latency_ms = 3000
        result = policy.screen(trio, needs(), policy.Limits(0.5, max_latency_ms=1000),
                               cooling=set())
        assert [p.name for p in result.eligible] == ["mid"]
        assert result.rejected["cheap"] == "latency:2500ms"

    def test_max_cost(self, trio):
        # worst case on dear: 100×0.0000025 + 16384×0.00001 ≈ 0.164
        result = policy.screen(trio, needs(), policy.Limits(0.5, max_cost=Decimal("0.05")),
                               cooling=set())
        assert result.rejected == {"dear": "max_cost"}

    def test_default_max_tokens_bounds_the_worst_case(self, trio):
        # A default of 1,000 output tokens (the request set none): dear's worst case is
        # 100×0.0000025 + 1000×0.00001 = 0.01025, within the limit that 16,384 tokens broke.
        result = policy.screen(trio, needs(default_max_tokens=1000),
                               policy.Limits(0.5, max_cost=Decimal("0.05")), cooling=set())
        assert result.rejected == {}
        assert policy.worst_case_cost(trio[2], needs(default_max_tokens=1000)) == Decimal(
            "0.01025")

    def test_default_max_tokens_is_clamped_never_a_constraint(self, trio):
        trio[1].max_output_tokens = 1000
        result = policy.screen(trio, needs(default_max_tokens=50_000), policy.Limits(0.5),
                               cooling=set())
        assert result.rejected == {}
        assert policy.worst_case_cost(trio[1], needs(default_max_tokens=50_000)) == (
            policy.worst_case_cost(trio[1], needs()))


class TestChoose:
    def test_cheapest_meeting_the_bar(self, trio):
        choice = choose(trio, min_quality=0.7)
        assert (choice.profile.name, choice.reason) == ("mid", "auto:quality")
        assert choose(trio, min_quality=0.6).profile.name == "cheap"
        assert choose(trio, min_quality=0.8).profile.name == "dear"

    def test_none_meets_the_bar_takes_the_best(self, trio):
        choice = choose(trio, min_quality=0.95)
        assert (choice.profile.name, choice.reason) == ("dear", "auto:best_available")

    def test_prediction_not_tier_decides(self, trio):
        # The learned prediction says the cheap model is good for this prompt.
        choice = choose(trio, predicted={"cheap": 0.9, "mid": 0.8, "dear": 0.95}, min_quality=0.8)
        assert choice.profile.name == "cheap"

    def test_budget_plenty_changes_nothing(self, trio):
        assert choose(trio, min_quality=0.8, remaining=Decimal("500")).reason == "auto:quality"

    def test_budget_low_downgrades_and_says_so(self, trio):
        choice = choose(trio, min_quality=0.8, remaining=Decimal("0.5"))
        assert (choice.profile.name, choice.reason) == ("mid", "auto:budget")
        assert choice.min_quality == pytest.approx(0.65)

    def test_budget_too_small_for_dear_worst_case(self, trio):
        # dear's worst case (~0.164) exceeds what is left; mid (~0.026) fits.
        choice = choose(trio, predicted=PRED, min_quality=0.85, remaining=Decimal("0.1"))
        assert choice.profile.name in ("mid", "cheap") and choice.reason == "auto:budget"

    def test_unlimited_budget(self, trio):
        assert choose(trio, min_quality=0.8, remaining=None).profile.name == "dear"


def duo():
    return [make("weak", "efficient", "0.00000015", "0.0000006"),
            make("strong", "premium", "0.0000025", "0.00001")]


def choose_margin(candidates, predicted, min_quality=0.72, margin=0.05, remaining=None, **kw):
    return policy.choose(candidates, predicted, needs(**kw), policy.Limits(min_quality),
                         budget_remaining=remaining, low_usd=1.0, low_calls=20,
                         budget_discount=0.15, escalation_margin=margin)


class TestEscalationMargin:
    """Good enough: meets the bar, or no dearer candidate is predicted better by > the margin."""

    def test_weak_meets_the_bar(self):
        choice = choose_margin(duo(), {"weak": 0.8, "strong": 0.99})
        assert (choice.profile.name, choice.reason) == ("weak", "auto:quality")

    def test_weak_below_the_bar_but_strong_gains_too_little(self):
        # 0.60 < 0.72, but the strong model is predicted only 0.04 better: not worth paying.
        choice = choose_margin(duo(), {"weak": 0.60, "strong": 0.64})
        assert (choice.profile.name, choice.reason) == ("weak", "auto:no_gain")
        assert choice.predicted_quality == 0.60 and choice.min_quality == 0.72
        # ... even when the strong model meets the bar: the bar alone no longer forces a call.
        choice = choose_margin(duo(), {"weak": 0.70, "strong": 0.74})
        assert (choice.profile.name, choice.reason) == ("weak", "auto:no_gain")

    def test_strong_better_by_more_than_the_margin(self):
        choice = choose_margin(duo(), {"weak": 0.60, "strong": 0.90})
        assert (choice.profile.name, choice.reason) == ("strong", "auto:quality")
        # Neither meets the bar: the strong one, the best predicted, says so.
        choice = choose_margin(duo(), {"weak": 0.30, "strong": 0.50})
        assert (choice.profile.name, choice.reason) == ("strong", "auto:best_available")

    def test_gain_equal_to_the_margin_does_not_escalate(self):
        assert choose_margin(duo(), {"weak": 0.5, "strong": 0.75},
                             margin=0.25).profile.name == "weak"
        assert choose_margin(duo(), {"weak": 0.5, "strong": 0.75},
                             margin=0.2499).profile.name == "strong"

    def test_cheap_and_best_below_the_bar_is_best_available_not_no_gain(self):
        # The old rule would pick it too (the best predicted): the margin changed nothing.
        choice = choose_margin(duo(), {"weak": 0.55, "strong": 0.50})
        assert (choice.profile.name, choice.reason) == ("weak", "auto:best_available")

    def test_no_margin_is_the_bar_alone(self):
        choice = choose_margin(duo(), {"weak": 0.60, "strong": 0.64}, margin=None)
        assert (choice.profile.name, choice.reason) == ("strong", "auto:best_available")
        choice = choose_margin(duo(), {"weak": 0.70, "strong": 0.74}, margin=None)
        assert (choice.profile.name, choice.reason) == ("strong", "auto:quality")

    def test_any_dearer_candidate_counts(self, trio):
        predicted = {"cheap": 0.62, "mid": 0.74, "dear": 0.86}
        # cheap: dear is 0.24 better; mid: dear is 0.12 better. 0.10 escalates all the way...
        choice = choose_margin(trio, predicted, min_quality=0.9, margin=0.10)
        assert (choice.profile.name, choice.reason) == ("dear", "auto:best_available")
        # ... 0.15 stops at mid, which is below the bar and not the best predicted.
        choice = choose_margin(trio, predicted, min_quality=0.9, margin=0.15)
        assert (choice.profile.name, choice.reason) == ("mid", "auto:no_gain")
        # A dearer model predicted *worse* never blocks the cheaper one.
        choice = choose_margin(trio, {"cheap": 0.5, "mid": 0.7, "dear": 0.6}, margin=0.05)
        assert (choice.profile.name, choice.reason) == ("mid", "auto:best_available")

    def test_equally_priced_better_candidate_counts_as_escalation(self, trio):
        twin = make("twin", "efficient", "0.00000015", "0.0000006")
        choice = choose_margin([trio[0], twin], {"cheap": 0.5, "twin": 0.7}, margin=0.05)
        assert choice.profile.name == "twin"

    def test_filters_still_come_first(self, trio):
        # The cheap model would win on the margin, but it lacks tools / cannot fit the prompt.
        predicted = {"cheap": 0.60, "mid": 0.62, "dear": 0.63}
        assert choose_margin(trio, predicted).profile.name == "cheap"
        trio[0].supports_tools = False
        screened = policy.screen(trio, needs(tools=True), policy.Limits(0.72), cooling=set())
        assert screened.rejected == {"cheap": "capability:tools"}
        choice = choose_margin(screened.eligible, predicted, tools=True)
        assert (choice.profile.name, choice.reason) == ("mid", "auto:no_gain")
        trio[0].supports_tools = True
        trio[1].context_window = 4000
        screened = policy.screen(trio, needs(prompt=5000), policy.Limits(0.72), cooling=set())
        assert [p.name for p in screened.eligible] == ["cheap", "dear"]
        choice = choose_margin(screened.eligible, predicted, prompt=5000)
        assert (choice.profile.name, choice.reason) == ("cheap", "auto:no_gain")

    def test_budget_downgrade_unchanged(self, trio):
        # Plenty of budget: dear (0.12 better than mid, 0.24 than cheap) meets 0.8.
        assert choose_margin(trio, PRED, min_quality=0.8,
                             remaining=Decimal("500")).profile.name == "dear"
        choice = choose_margin(trio, PRED, min_quality=0.8, remaining=Decimal("0.5"))
        assert (choice.profile.name, choice.reason) == ("mid", "auto:budget")
        assert choice.min_quality == pytest.approx(0.65)
        # dear's worst case (~0.164) exceeds what is left: never chosen, whatever its gain.
        choice = choose_margin(trio, PRED, min_quality=0.85, remaining=Decimal("0.1"))
        assert choice.profile.name in ("mid", "cheap") and choice.reason == "auto:budget"

    def test_budget_downgrade_with_the_margin(self, trio):
        # Low budget, lowered bar 0.65: cheap (0.60) misses it, but mid gains only 0.03 on it.
        predicted = {"cheap": 0.60, "mid": 0.63, "dear": 0.95}
        assert choose_margin(trio, predicted, min_quality=0.8).profile.name == "dear"
        choice = choose_margin(trio, predicted, min_quality=0.8, remaining=Decimal("0.1"))
        assert (choice.profile.name, choice.reason) == ("cheap", "auto:budget")

    def test_reasons_are_a_bounded_set(self, trio):
        rng = np.random.default_rng(0)
        seen = set()
        for _ in range(300):
            predicted = dict(zip(("cheap", "mid", "dear"), rng.random(3).round(2), strict=True))
            remaining = Decimal(str(rng.choice([0.05, 0.5, 100.0])))
            margin = rng.choice([None, 0.0, 0.05, 0.2])
            seen.add(choose_margin(trio, predicted, min_quality=float(rng.random()),
                                   margin=margin, remaining=remaining).reason)
        assert seen <= set(policy.AUTO_REASONS)
        assert {"auto:quality", "auto:no_gain", "auto:best_available", "auto:budget"} <= seen


class TestFallbacks:
    def test_configured_first_then_cheapest_good(self, trio):
        extra = make("other", "standard", "0.0000003", "0.000001")
        candidates = trio + [extra]
        predicted = PRED | {"other": 0.75}
        order = policy.order_fallbacks(trio[1], [trio[2]], candidates, predicted, needs(), 0.7,
                                       extra=2)
        assert [p.name for p in order] == ["dear", "other", "cheap"]

    def test_extra_zero_keeps_configured_only(self, trio):
        order = policy.order_fallbacks(trio[0], [trio[1]], trio, PRED, needs(), 0.5, extra=0)
        assert [p.name for p in order] == ["mid"]


class TestRequiredQuality:
    def test_tiers(self, settings):
        settings.ROUTING_TIER_MIN_QUALITY = {"free": 0.6, "standard": 0.7, "premium": 0.8}
        empty = parse_hints({}, {}, complexity_levels=LEVELS)
        assert required_quality("free", empty, None) == 0.6
        assert required_quality("premium", empty, None) == 0.8
        assert required_quality("unknown", empty, None) == 0.7

    def test_hint_beats_complexity_beats_alias_beats_tier(self, settings):
        settings.ROUTING_COMPLEXITY_MIN_QUALITY = LEVELS
        hinted = parse_hints({"min_quality": 0.9, "complexity": "simple"}, {},
                             complexity_levels=LEVELS)
        assert required_quality("free", hinted, 0.5) == 0.9
        level = parse_hints({}, {"x-llmops-complexity": "complex"}, complexity_levels=LEVELS)
        assert required_quality("free", level, 0.5) == 0.8
        assert required_quality("free", parse_hints({}, {}, complexity_levels=LEVELS), 0.5) == 0.5


class TestHints:
    def test_metadata_and_headers(self):
        hints = parse_hints({"max_latency_ms": "1500"}, {"x-llmops-max-cost": "0.01",
                                                         "x-llmops-min-quality": "0.7"},
                            complexity_levels=LEVELS)
        assert hints.max_latency_ms == 1500
        assert hints.max_cost == Decimal("0.01")
        assert hints.min_quality == 0.7

    @pytest.mark.parametrize("metadata", [{"min_quality": 2}, {"min_quality": "x"},
                                          {"max_latency_ms": -1}, {"max_cost": "nan"},
                                          {"complexity": "hard"}])
    def test_malformed_hints_are_invalid_requests(self, metadata):
        from routing.errors import InvalidRequest

        with pytest.raises(InvalidRequest):
            parse_hints(metadata, {}, complexity_levels=LEVELS)
