"""Router evaluation as in the RouteLLM paper: APGR, CPT(50%), CPT(80%) from labeled outcomes.

A router gives every test prompt a score (higher: more in need of the strong model). Sweeping a
threshold over the scores sends the top share c of prompts to the strong model; at each c the
accuracy is measured and turned into the performance gap recovered,
PGR(c) = (acc(c) - acc_weak) / (acc_strong - acc_weak). APGR is the area under PGR over
c ∈ [0, 1] (random ≈ 0.5; an oracle exceeds 1 because routing away from the strong model's own
mistakes beats it); CPT(x) is the smallest strong-call share with PGR ≥ x.
"""

import json
import re
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Outcome:
    """One labeled prompt: did the weak and the strong model answer it correctly?"""

    prompt: str
    weak_correct: bool
    strong_correct: bool
    source: str = ""


@dataclass(frozen=True)
class Curve:
    """Accuracy and PGR as the strong-call share grows; its APGR and CPTs."""

    shares: np.ndarray
    accuracy: np.ndarray
    pgr: np.ndarray
    apgr: float
    cpt50: float
    cpt80: float


def load_outcomes(path: str | Path) -> list[Outcome]:
    """Read a JSONL file of {prompt, weak_correct, strong_correct[, source]} rows."""
    rows = []
    with open(path, encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            data = json.loads(line)
            try:
                rows.append(Outcome(prompt=str(data["prompt"]),
                                    weak_correct=bool(data["weak_correct"]),
                                    strong_correct=bool(data["strong_correct"]),
                                    source=str(data.get("source", ""))))
            except KeyError as exc:
                raise ValueError(f"{path}:{line_number}: missing field {exc}") from exc
    return rows


def curve(scores: np.ndarray, weak: np.ndarray, strong: np.ndarray) -> Curve:
    """Return the routing curve for `scores` (ties are broken by sending whole tie groups)."""
    scores = np.asarray(scores, dtype=np.float64)
    weak = np.asarray(weak, dtype=np.float64)
    strong = np.asarray(strong, dtype=np.float64)
    n = len(scores)
    order = np.argsort(-scores, kind="stable")
    gain = (strong - weak)[order]
    # Only cut between different scores: a threshold cannot split prompts that score the same.
    sorted_scores = scores[order]
    cuts = [0] + [i for i in range(1, n) if sorted_scores[i] != sorted_scores[i - 1]] + [n]
    cumulative = np.concatenate([[0.0], np.cumsum(gain)])
    shares = np.array(cuts, dtype=np.float64) / n
    accuracy = (weak.sum() + cumulative[cuts]) / n
    gap = strong.mean() - weak.mean()
    pgr = (accuracy - weak.mean()) / gap if gap else np.ones_like(accuracy)
    return Curve(shares=shares, accuracy=accuracy, pgr=pgr,
                 apgr=float(np.trapezoid(pgr, shares)),
                 cpt50=_cpt(shares, pgr, 0.5), cpt80=_cpt(shares, pgr, 0.8))


def _cpt(shares: np.ndarray, pgr: np.ndarray, target: float) -> float:
    reached = np.nonzero(pgr >= target - 1e-12)[0]
    return float(shares[reached[0]]) if len(reached) else 1.0


def random_scores(n: int, seed: int = 0) -> np.ndarray:
    """Return the random router's scores."""
    return np.random.default_rng(seed).random(n)


# The seed's heuristic, kept as a baseline: keywords decide complexity, complexity decides the
# model. Measured here it is no better than chance.
_COMPLEX = re.compile(r"\b(analy[sz]e|explain|compare|evaluate|design|prove|derive|why|how|"
                      r"calculate|solve|reason|implement)\b", re.IGNORECASE)
_SIMPLE = re.compile(r"\b(what|who|when|where|which|list|define|name)\b", re.IGNORECASE)


def keyword_complexity(prompt: str) -> float:
    """Return the seed's complexity score: 1 complex, 0.5 moderate, 0 simple."""
    if _COMPLEX.search(prompt):
        return 1.0
    if _SIMPLE.search(prompt):
        return 0.0
    return 0.5


def kfold_indices(n: int, folds: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """Return (train, test) index arrays for `folds`-fold cross-validation."""
    order = np.random.default_rng(seed).permutation(n)
    parts = np.array_split(order, folds)
    return [(np.concatenate([p for j, p in enumerate(parts) if j != i]), parts[i])
            for i in range(folds)]


def learned_predictions(train_vectors: np.ndarray, train: list[Outcome],
                        test_vectors: np.ndarray, test: list[Outcome], *,
                        k: int, train_layers: dict[int, np.ndarray] | None = None,
                        test_layers: dict[int, np.ndarray] | None = None,
                        layers: tuple[int, ...] = (),
                        temperature: float = 1.0, formats: bool = True,
                        min_format_examples: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """Return predicted P(weak correct) and P(strong correct) per test prompt.

    The models are the production ones (`routing.learned.OutcomeModel`), trained in memory on
    the training rows only; with `layers` and the prompts' pooled states of them
    (`train_layers`, `test_layers`: {layer: (n, d)}) they predict from those layers as the
    gateway does for a request that carries them; `formats` gives each prompt format with at
    least `min_format_examples` training rows members of its own, as the gateway does.
    """
    from routing.learned import OutcomeModel

    train_texts = [o.prompt for o in train]
    test_texts = [o.prompt for o in test]
    predictions = []
    for field_name in ("weak_correct", "strong_correct"):
        scores = np.array([getattr(o, field_name) for o in train], dtype=np.float64)
        if not OutcomeModel.can_fit(scores, min_examples=2):  # one outcome only: a constant
            predictions.append(np.full(len(test), scores.mean() if len(scores) else 0.5))
            continue
        model = OutcomeModel(k=k, layers=layers, temperature=temperature, formats=formats,
                             min_format_examples=min_format_examples).fit(
            train_texts, train_vectors, scores, layers=train_layers)
        predictions.append(model.predict(test_texts, test_vectors, layers=test_layers))
    return predictions[0], predictions[1]


def learned_scores(train_vectors: np.ndarray, train: list[Outcome], test_vectors: np.ndarray,
                   test: list[Outcome], *, k: int) -> np.ndarray:
    """Return the learned router's scores: predicted strong-minus-weak P(correct) per prompt."""
    weak, strong = learned_predictions(train_vectors, train, test_vectors, test, k=k)
    return strong - weak


# The gateway's own rule. Its decisions come from `routing.policy.choose` itself, called per
# prompt with the two profiles and their predictions, so the evaluation cannot drift from
# production: any change to the policy changes these numbers.
NO_BAR = float("inf")  # min_quality that no prediction meets: the escalation margin alone decides


def policy_sends_strong(weak_profile, strong_profile, needs: list, p_weak: np.ndarray,
                        p_strong: np.ndarray, *, min_quality: float,
                        escalation_margin: float | None) -> np.ndarray:
    """Return, per prompt, whether `routing.policy.choose` serves it with `strong_profile`.

    `needs` holds each prompt's `policy.Needs` (prices decide which profile is the dearer one).
    No budget is in play: the budget downgrade is a separate lever.
    """
    from routing import policy

    if weak_profile.name == strong_profile.name:
        raise ValueError("The weak and the strong profile must differ.")
    limits = policy.Limits(min_quality=min_quality)
    candidates = [weak_profile, strong_profile]
    sends = np.zeros(len(needs), dtype=bool)
    for i, (need, weak, strong) in enumerate(zip(needs, p_weak, p_strong, strict=True)):
        choice = policy.choose(candidates, {weak_profile.name: float(weak),
                                            strong_profile.name: float(strong)},
                               need, limits, budget_remaining=None, low_usd=0.0, low_calls=0,
                               budget_discount=0.0, escalation_margin=escalation_margin)
        sends[i] = choice.profile.name == strong_profile.name
    return sends


def margin_grid(p_weak: np.ndarray, p_strong: np.ndarray, points: int = 101) -> np.ndarray:
    """Return escalation margins to sweep, largest first: quantiles of the predicted gain, so the
    operating points spread evenly over the strong-call share."""
    gains = np.asarray(p_strong, dtype=np.float64) - np.asarray(p_weak, dtype=np.float64)
    return np.unique(np.quantile(gains, np.linspace(0.0, 1.0, points)))[::-1]


def policy_scores(weak_profile, strong_profile, needs: list, p_weak: np.ndarray,
                  p_strong: np.ndarray, *, steps: list[tuple[float, float | None]]) -> np.ndarray:
    """Return scores that replay a sweep of the policy's settings through `curve`.

    `steps` are (min_quality, escalation_margin) pairs ordered from the fewest strong calls to
    the most (a shrinking margin, or a rising bar). A prompt's score is the number of steps at
    which the policy sends it to the strong model. The strong sets must grow step by step
    (checked), so each threshold on these scores is exactly one operating point of the policy;
    prompts it never escalates tie at 0 and go last in one block, i.e. the curve joins the
    policy's last point to all-strong in a straight line.
    """
    scores = np.zeros(len(needs), dtype=np.int64)
    previous = np.zeros(len(needs), dtype=bool)
    for min_quality, margin in steps:
        sends = policy_sends_strong(weak_profile, strong_profile, needs, p_weak, p_strong,
                                    min_quality=min_quality, escalation_margin=margin)
        if np.any(previous & ~sends):
            raise ValueError("The policy's strong set does not grow along the sweep.")
        scores += sends
        previous = sends
    return scores.astype(np.float64)


def margin_sweep(min_quality: float, margins: np.ndarray) -> list[tuple[float, float]]:
    """Return policy steps at one bar, the margin shrinking."""
    return [(min_quality, float(m)) for m in sorted(margins, reverse=True)]


def bar_sweep(p_weak: np.ndarray, points: int = 101) -> list[tuple[float, None]]:
    """Return policy steps with the margin off, the bar rising through the quantiles of the
    predicted P(weak good): the rule as it was before the margin existed."""
    bars = np.unique(np.quantile(np.asarray(p_weak, dtype=np.float64),
                                 np.linspace(0.0, 1.0, points)))
    return [(float(q), None) for q in bars] + [(NO_BAR, None)]


# Costs and operating points: what a routing costs per 1,000 prompts at the shares above.
def prompt_needs(test: list[Outcome], output_tokens: int) -> list:
    """Return each test prompt's `policy.Needs`, as the gateway builds it for one user message."""
    from routing import policy
    from routing.tokens import estimate_prompt_tokens

    rows = []
    for outcome in test:
        messages = [{"role": "user", "content": outcome.prompt}]
        openai = estimate_prompt_tokens(messages, provider="openai")
        rows.append(policy.Needs(
            prompt_tokens={"openai": openai, "openai_compatible": openai,
                           "anthropic": estimate_prompt_tokens(messages, provider="anthropic")},
            max_output_tokens=output_tokens))
    return rows


def call_costs(test: list[Outcome], weak_profile, strong_profile,
               output_tokens: int) -> np.ndarray:
    """Return (n, 2) USD per call of each test prompt on the weak and the strong profile."""
    from routing.pricing import max_cost
    from routing.tokens import estimate_prompt_tokens

    rows = []
    for outcome in test:
        messages = [{"role": "user", "content": outcome.prompt}]
        rows.append([float(max_cost(p, prompt_tokens=estimate_prompt_tokens(
            messages, provider=p.provider), max_output_tokens=output_tokens))
            for p in (weak_profile, strong_profile)])
    return np.array(rows)


def costs_at(routed: Curve, scores: np.ndarray, costs: np.ndarray) -> dict:
    """Return cost per 1,000 prompts at CPT(50%), CPT(80%), all-weak and all-strong, from the
    per-call costs of `call_costs`."""
    order = np.argsort(-scores, kind="stable")
    n = len(scores)

    def at(share: float) -> float:
        strong_count = int(round(share * n))
        strong_rows = order[:strong_count]
        total = costs[:, 0].sum() - costs[strong_rows, 0].sum() + costs[strong_rows, 1].sum()
        return float(Decimal(total * 1000 / n).quantize(Decimal("0.0001")))

    return {"cost_per_1k_cpt50": at(routed.cpt50), "cost_per_1k_cpt80": at(routed.cpt80),
            "cost_per_1k_all_weak": at(0.0), "cost_per_1k_all_strong": at(1.0)}


def operating_point(sends: np.ndarray, weak: np.ndarray, strong: np.ndarray,
                    costs: np.ndarray) -> dict:
    """Return strong share, accuracy, PGR and cost per 1,000 prompts of one routing."""
    weak = weak.astype(np.float64)
    strong = strong.astype(np.float64)
    accuracy = float(np.where(sends, strong, weak).mean())
    gap = strong.mean() - weak.mean()
    return {"strong_share": float(sends.mean()), "accuracy": accuracy,
            "pgr": float((accuracy - weak.mean()) / gap) if gap else 1.0,
            "cost_per_1k": float(np.where(sends, costs[:, 1], costs[:, 0]).mean() * 1000)}


def mean_point(points: list[dict]) -> dict:
    """Return the mean of operating points over splits (4 decimals)."""
    return {key: round(float(np.mean([p[key] for p in points])), 4) for key in points[0]}


def curve_metrics(routed: Curve) -> dict:
    """Return a curve's APGR, CPT(50%) and CPT(80%) (4 decimals)."""
    return {"apgr": round(routed.apgr, 4), "cpt50": round(routed.cpt50, 4),
            "cpt80": round(routed.cpt80, 4)}


def summarize(curves: list[Curve], costs: list[dict]) -> dict:
    """Return mean metrics and costs over splits (4 decimals)."""
    row = {"apgr": float(np.mean([c.apgr for c in curves])),
           "apgr_capped": float(np.mean([np.trapezoid(np.minimum(c.pgr, 1.0), c.shares)
                                         for c in curves])),
           "cpt50": float(np.mean([c.cpt50 for c in curves])),
           "cpt80": float(np.mean([c.cpt80 for c in curves]))}
    for key in costs[0]:
        row[key] = float(np.mean([c[key] for c in costs]))
    return {k: round(v, 4) for k, v in row.items()}
