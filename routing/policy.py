"""The auto-routing policy as pure functions: filter candidates, then pick the cheapest good one.

No I/O here: the router gathers profiles, predictions, cooldowns and the remaining budget, and
these functions decide, so every rule is unit-testable with plain values.
"""

from dataclasses import dataclass, field
from decimal import Decimal

from routing.pricing import max_cost
from routing.providers import provider_spec
from routing.tokens import PromptEstimate

# Output length assumed when comparing prices and the caller set no max_tokens.
TYPICAL_OUTPUT_TOKENS = 512


@dataclass(frozen=True)
class Needs:
    """What a request requires of any model that serves it."""

    # upper-bound estimate per provider (tokenizers differ), when there is no `estimate`
    prompt_tokens: dict[str, int] = field(default_factory=dict)
    max_output_tokens: int | None = None
    default_max_tokens: int | None = None  # sent when the request set none; not a constraint
    tools: bool = False
    json_mode: bool = False
    vision: bool = False
    streaming: bool = False
    # The request's own prompt per model (text, tools, schemas, images), counted once: what the
    # router screens with, and where the chosen chain's reservation bounds come from.
    estimate: PromptEstimate | None = field(default=None, compare=False)

    def prompt_tokens_for(self, profile) -> int:
        """Return how much of `profile`'s context window the prompt takes (an upper bound)."""
        if self.estimate is not None:
            return self.estimate.context_tokens(provider=profile.provider,
                                                upstream_model=profile.upstream_model)
        return self.prompt_tokens.get(profile.provider, max(self.prompt_tokens.values()))


@dataclass(frozen=True)
class Limits:
    """The caller's quality bar and limits for auto routing."""

    min_quality: float
    max_latency_ms: int | None = None
    max_cost: Decimal | None = None  # USD per request, worst case


@dataclass
class Screening:
    """Candidates that passed, and why each other one was dropped (name → reason)."""

    eligible: list = field(default_factory=list)
    rejected: dict[str, str] = field(default_factory=dict)


def missing_capability(profile, needs: Needs) -> str | None:
    """Return the first capability `needs` asks for that `profile` lacks, or None: a profile
    never has what its provider's wire format cannot carry (routing/providers.py)."""
    spec = provider_spec(profile.provider)
    for wanted, has, label in (
        (needs.tools, profile.supports_tools and (spec is None or spec.tools), "tools"),
        (needs.json_mode, profile.supports_json_mode, "json_mode"),
        (needs.vision, profile.supports_vision and (spec is None or spec.images), "vision"),
        (needs.streaming, profile.supports_streaming and (spec is None or spec.streams),
         "streaming"),
    ):
        if wanted and not has:
            return label
    return None


def context_problem(profile, needs: Needs) -> str | None:
    """Return why the request cannot fit `profile`'s context or output limits, or None."""
    prompt = needs.prompt_tokens_for(profile)
    output = needs.max_output_tokens or 0
    if output > profile.max_output_tokens:
        return f"max_tokens {output} exceeds its max output of {profile.max_output_tokens}"
    if prompt + output > profile.context_window:
        return (f"prompt (≤{prompt} tokens) + max_tokens {output} exceeds its context window of "
                f"{profile.context_window}")
    return None


def output_limit(profile, *, requested: int | None, default: int | None) -> int:
    """Return the most output tokens a request may produce on `profile`: its own max_tokens,
    else its team's default, else the model's max output — never above the model's max."""
    limit = requested or default
    return min(limit, profile.max_output_tokens) if limit else profile.max_output_tokens


def worst_case_cost(profile, needs: Needs) -> Decimal:
    """Return the most this request can cost on `profile` (what budgets reserve)."""
    output = output_limit(profile, requested=needs.max_output_tokens,
                          default=needs.default_max_tokens)
    return max_cost(profile, prompt_tokens=needs.prompt_tokens_for(profile),
                    max_output_tokens=output)


def typical_cost(profile, needs: Needs) -> Decimal:
    """Return the cost used to compare prices: the prompt plus a typical answer length."""
    output = min(needs.max_output_tokens or TYPICAL_OUTPUT_TOKENS, TYPICAL_OUTPUT_TOKENS)
    return max_cost(profile, prompt_tokens=needs.prompt_tokens_for(profile),
                    max_output_tokens=output)


def screen(profiles: list, needs: Needs, limits: Limits, *, cooling: set[str]) -> Screening:
    """Drop candidates that cannot serve the request, recording the reason for each."""
    result = Screening()
    for profile in profiles:
        capability = missing_capability(profile, needs)
        context = None if capability else context_problem(profile, needs)
        if capability:
            result.rejected[profile.name] = f"capability:{capability}"
        elif context:
            result.rejected[profile.name] = f"context:{context}"
        elif profile.name in cooling:
            result.rejected[profile.name] = "cooldown"
        elif limits.max_latency_ms and profile.latency_ms > limits.max_latency_ms:
            result.rejected[profile.name] = f"latency:{profile.latency_ms}ms"
        elif limits.max_cost is not None and worst_case_cost(profile, needs) > limits.max_cost:
            result.rejected[profile.name] = "max_cost"
        else:
            result.eligible.append(profile)
    return result


# Every reason `choose` gives (a bounded label set: `llm_model_selection_total{reason}`).
REASON_QUALITY = "auto:quality"  # the cheapest candidate predicted to meet the bar
REASON_NO_GAIN = "auto:no_gain"  # below the bar, but no dearer candidate is predicted better
#                                  by more than the escalation margin
REASON_BEST_AVAILABLE = "auto:best_available"  # nothing good enough: the best predicted
REASON_BUDGET = "auto:budget"  # the remaining budget is low and a cheaper choice was made
AUTO_REASONS = (REASON_QUALITY, REASON_NO_GAIN, REASON_BEST_AVAILABLE, REASON_BUDGET)


def escalation_gain(profile, candidates: list, predicted: dict[str, float],
                    costs: dict[str, Decimal]) -> float | None:
    """Return how much better than `profile` the best other candidate at least as dear is
    predicted to be (None: there is no such candidate)."""
    dearer = [predicted[p.name] for p in candidates
              if p.name != profile.name and costs[p.name] >= costs[profile.name]]
    return max(dearer) - predicted[profile.name] if dearer else None


def pick(candidates: list, predicted: dict[str, float], needs: Needs, min_quality: float,
         escalation_margin: float | None = None):
    """Return (profile, reason): the cheapest good-enough candidate, else the best predicted.

    A candidate is good enough when its predicted quality meets `min_quality` (`auto:quality`),
    or — with an `escalation_margin` — when no candidate at least as dear is predicted better by
    more than the margin: paying for the dearer model buys no expected gain (`auto:no_gain`).
    With two tiers the margin rule ranks prompts by P(strong good) − P(weak good), the score
    `manage.py eval_router` measures. When nothing is good enough (only without a margin: the
    dearest candidate always passes the margin test), the one predicted best, cheaper first on
    ties (`auto:best_available`); a margin choice that is also the best predicted says so too.
    """
    costs = {p.name: typical_cost(p, needs) for p in candidates}

    def good_enough(profile) -> bool:
        if predicted[profile.name] >= min_quality:
            return True
        if escalation_margin is None:
            return False
        gain = escalation_gain(profile, candidates, predicted, costs)
        return gain is None or gain <= escalation_margin

    best = min(candidates, key=lambda p: (-predicted[p.name], costs[p.name], p.name))
    good = [p for p in candidates if good_enough(p)]
    if not good:
        return best, REASON_BEST_AVAILABLE
    chosen = min(good, key=lambda p: (costs[p.name], -predicted[p.name], p.name))
    if predicted[chosen.name] >= min_quality:
        return chosen, REASON_QUALITY
    return chosen, REASON_BEST_AVAILABLE if chosen.name == best.name else REASON_NO_GAIN


def budget_is_low(remaining: Decimal | None, reference_cost: Decimal, *, low_usd: float,
                  low_calls: int) -> bool:
    """Return whether the remaining budget counts as low for a call of `reference_cost`."""
    if remaining is None:
        return False
    return remaining < Decimal(str(low_usd)) or remaining < reference_cost * low_calls


@dataclass(frozen=True)
class Choice:
    """The policy's answer for auto routing."""

    profile: object
    reason: str
    predicted_quality: float
    min_quality: float


def choose(candidates: list, predicted: dict[str, float], needs: Needs, limits: Limits, *,
           budget_remaining: Decimal | None, low_usd: float, low_calls: int,
           budget_discount: float, escalation_margin: float | None = None) -> Choice:
    """Pick among screened `candidates`: cheapest predicted good enough, budget-aware.

    Good enough: meets `limits.min_quality`, or no dearer candidate is predicted better by more
    than `escalation_margin` (None: the bar alone decides); see `pick`. When the remaining budget
    is low, the quality bar drops by `budget_discount` and candidates whose worst case no longer
    fits the budget are avoided; the reason then says `auto:budget` if that changed the choice.
    """
    profile, reason = pick(candidates, predicted, needs, limits.min_quality, escalation_margin)
    low = budget_remaining is not None and budget_is_low(
        budget_remaining, worst_case_cost(profile, needs), low_usd=low_usd, low_calls=low_calls)
    if low:
        lowered = max(0.0, limits.min_quality - budget_discount)
        affordable = [p for p in candidates if worst_case_cost(p, needs) <= budget_remaining]
        pool = affordable or [min(candidates, key=lambda p: (worst_case_cost(p, needs), p.name))]
        thrifty, _ = pick(pool, predicted, needs, lowered, escalation_margin)
        if thrifty.name != profile.name and typical_cost(thrifty, needs) <= typical_cost(
                profile, needs):
            return Choice(thrifty, REASON_BUDGET, predicted[thrifty.name], lowered)
    return Choice(profile, reason, predicted[profile.name], limits.min_quality)


def order_fallbacks(chosen, configured: list, candidates: list, predicted: dict[str, float],
                    needs: Needs, min_quality: float, extra: int) -> list:
    """Return the fallbacks after `chosen`: its configured list first, then up to `extra` other
    candidates (those meeting the bar, cheapest first, then the rest, best first)."""
    result = [p for p in configured if p.name != chosen.name]
    seen = {chosen.name} | {p.name for p in result}
    rest = [p for p in candidates if p.name not in seen]
    good = sorted((p for p in rest if predicted.get(p.name, 0) >= min_quality),
                  key=lambda p: (typical_cost(p, needs), p.name))
    weaker = sorted((p for p in rest if predicted.get(p.name, 0) < min_quality),
                    key=lambda p: (-predicted.get(p.name, 0), p.name))
    return result + (good + weaker)[:max(0, extra)]
