"""One run of `manage.py eval_router`: the learned router, its baselines and the gateway's policy
rule (`routing.policy.choose`) on every split, averaged, with what each routing costs."""

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from django.conf import settings
from django.db import DatabaseError

from routing import evaluation, learned
from routing.defaults import all_default_profiles
from routing.models import ModelProfile


class EvaluationError(Exception):
    """The options or the outcome files do not allow a run (the command reports the message)."""


@dataclass(frozen=True)
class RouterEvalOptions:
    """What to evaluate: `--folds` on `file`, or `train` against `test`; the rest as in
    `manage.py eval_router --help` (None: the gateway's own setting)."""

    cache_dir: Path
    file: str | None = None
    train: str | None = None
    test: str | None = None
    folds: int = 0
    repeats: int = 1
    seed: int = 0
    k: int | None = None
    weak_model: str = "gpt-4o-mini"
    strong_model: str = "gpt-4o"
    output_tokens: int = 256
    min_quality: list[float] | None = None
    margin: list[float] | None = None
    layers: str | None = None
    temperature: float | None = None
    formats: str | None = None


@dataclass
class RouterEvaluation:
    """Mean metrics over the splits: the routers, the policy rows and their operating points."""

    split_names: list[str]
    learned_curves: list[evaluation.Curve]
    summary: dict[str, dict]
    policy: dict[str, dict]
    operating: list[dict]
    k: int
    layers: tuple[int, ...]
    temperature: float
    formats: bool
    weak_profile: ModelProfile = field(repr=False)
    strong_profile: ModelProfile = field(repr=False)
    output_tokens: int = 256


def router_evaluate(*, options: RouterEvalOptions) -> RouterEvaluation:
    """Route every test prompt of every split between the weak and the strong profile by each
    router, sweep the threshold, and return the mean APGR, CPT(50%), CPT(80%) and costs."""
    k = options.k or learned.K
    names, splits = outcome_splits(options)
    bars = policy_bars(options.min_quality)
    margins = operating_margins(options.margin)
    results: dict[str, list[evaluation.Curve]] = {
        "learned": [], "weak-only": [], "random": [], "keyword": []}
    costs: dict[str, list[dict]] = {name: [] for name in results}
    weak_profile, strong_profile = (profile_named(options.weak_model),
                                    profile_named(options.strong_model))
    if weak_profile.name == strong_profile.name:
        raise EvaluationError("--weak-model and --strong-model must name different profiles.")
    # The gateway's rule: routing.policy.choose between the two profiles, per quality bar.
    policy_rows = {name: [] for name in bars}
    policy_costs: dict[str, list[dict]] = {name: [] for name in bars}
    points: dict[tuple[str, float], list[dict]] = {
        (name, margin): [] for name, bar in bars.items() if bar is not None
        for margin in margins}
    # Embed every distinct prompt once (and cache it): folds then only index into it.
    prompts = sorted({o.prompt for train, test in splits for o in train + test})
    all_vectors, all_layers = prompt_embeddings(prompts, options.cache_dir)
    layers, temperature = layer_options(options, all_layers)
    formats = learned.FORMATS if options.formats is None else options.formats == "on"
    row_of = {prompt: i for i, prompt in enumerate(prompts)}
    for index, (train, test) in enumerate(splits):
        train_rows = [row_of[o.prompt] for o in train]
        test_rows = [row_of[o.prompt] for o in test]
        train_vectors, test_vectors = all_vectors[train_rows], all_vectors[test_rows]
        weak = np.array([o.weak_correct for o in test])
        strong = np.array([o.strong_correct for o in test])
        rng = np.random.default_rng(options.seed + index)
        p_weak, p_strong = evaluation.learned_predictions(
            train_vectors, train, test_vectors, test, k=k,
            train_layers={x: all_layers[x][train_rows] for x in layers},
            test_layers={x: all_layers[x][test_rows] for x in layers},
            layers=layers, temperature=temperature, formats=formats,
            min_format_examples=learned.MIN_EXAMPLES)
        scores = {
            "learned": p_strong - p_weak,
            # The same predictions, ranked by P(weak correct) alone: a quality threshold on
            # the cheap model with no strong-model term (the policy rows measure the rule).
            "weak-only": -p_weak,
            "random": evaluation.random_scores(len(test), seed=options.seed + index),
            # Within one complexity level the seed's choice is arbitrary: break ties at random.
            "keyword": np.array([evaluation.keyword_complexity(o.prompt) for o in test])
            + rng.random(len(test)) * 1e-3,
        }
        needs = evaluation.prompt_needs(test, options.output_tokens)
        call_costs = evaluation.call_costs(test, weak_profile, strong_profile,
                                           options.output_tokens)
        for name, router_scores in scores.items():
            curve = evaluation.curve(router_scores, weak, strong)
            results[name].append(curve)
            costs[name].append(evaluation.costs_at(curve, router_scores, call_costs))
        grid = evaluation.margin_grid(p_weak, p_strong)
        for name, bar in bars.items():
            steps = (evaluation.bar_sweep(p_weak) if bar is None
                     else evaluation.margin_sweep(bar, grid))
            router_scores = evaluation.policy_scores(
                weak_profile, strong_profile, needs, p_weak, p_strong, steps=steps)
            curve = evaluation.curve(router_scores, weak, strong)
            policy_rows[name].append(curve)
            policy_costs[name].append(evaluation.costs_at(curve, router_scores, call_costs))
            for margin in margins if bar is not None else []:
                sends = evaluation.policy_sends_strong(
                    weak_profile, strong_profile, needs, p_weak, p_strong, min_quality=bar,
                    escalation_margin=margin)
                points[name, margin].append(evaluation.operating_point(sends, weak, strong,
                                                                       call_costs))
    summary = {name: evaluation.summarize(curves, costs[name])
               for name, curves in results.items()}
    policy_summary = {
        name: {"min_quality": None if bars[name] in (None, evaluation.NO_BAR) else bars[name],
               "swept": "min_quality" if bars[name] is None else "escalation_margin",
               **evaluation.summarize(curves, policy_costs[name])}
        for name, curves in policy_rows.items()}
    operating = [{"rule": name, "min_quality": policy_summary[name]["min_quality"],
                  "escalation_margin": margin, **evaluation.mean_point(rows)}
                 for (name, margin), rows in points.items()]
    return RouterEvaluation(
        split_names=names, learned_curves=results["learned"], summary=summary,
        policy=policy_summary, operating=operating, k=k, layers=layers, temperature=temperature,
        formats=formats, weak_profile=weak_profile, strong_profile=strong_profile,
        output_tokens=options.output_tokens)


def outcome_splits(options: RouterEvalOptions) -> tuple[list[str], list[tuple[list, list]]]:
    """Return split names ("s<seed>f<fold>" or "test") and (train, test) outcome lists."""
    try:
        if options.folds:
            if not options.file:
                raise EvaluationError("--folds needs a FILE.")
            if options.repeats < 1:
                raise EvaluationError("--repeats must be at least 1.")
            rows = evaluation.load_outcomes(options.file)
            names, splits = [], []
            for seed in range(options.seed, options.seed + options.repeats):
                folds = evaluation.kfold_indices(len(rows), options.folds, seed)
                for fold, (train, test) in enumerate(folds):
                    names.append(f"s{seed}f{fold}")
                    splits.append(([rows[i] for i in train], [rows[i] for i in test]))
            return names, splits
        if not (options.train and options.test):
            raise EvaluationError("Give --train A --test B, or --folds N FILE.")
        return ["test"], [(evaluation.load_outcomes(options.train),
                           evaluation.load_outcomes(options.test))]
    except (OSError, ValueError) as exc:
        raise EvaluationError(str(exc)) from exc


def profile_named(name: str) -> ModelProfile:
    """Return the named profile from the database, else from the shipped defaults."""
    try:
        profile = ModelProfile.objects.filter(name=name).first()
    except DatabaseError:  # no migrated database: the evaluation needs only prices
        profile = None
    if profile is not None:
        return profile
    for fields in all_default_profiles():
        if fields["name"] == name:
            return ModelProfile(**fields)
    raise EvaluationError(
        f"Unknown profile {name!r} (run load_default_models, or pick another).")


def prompt_embeddings(texts: list[str],
                      cache_dir: Path) -> tuple[np.ndarray, dict[int, np.ndarray]]:
    """Return embeddings of `texts` and their pooled intermediate layers ({layer: (n, d)}),
    from the gateway's embedder in one pass, cached on disk by content (the slow part)."""
    from semcache.embedder import precision_tag

    key = precision_tag("\x1e".join(texts))  # int8 vectors are cached apart from fp32 ones
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:24]
    path = cache_dir / f"router-embeddings-layers-{digest}.npz"
    if not path.exists():
        from routing.services import embedder_embed
        from semcache.embedder import get_embedder

        out = embedder_embed(get_embedder())(texts)
        vectors, layers = out if isinstance(out, tuple) else (out, {})
        cache_dir.mkdir(parents=True, exist_ok=True)
        np.savez(path, vectors=vectors, layer_ids=np.array(sorted(layers), dtype=int),
                 layers=np.stack([layers[x] for x in sorted(layers)], axis=1) if layers
                 else np.zeros((len(texts), 0, vectors.shape[1]), dtype=np.float32))
    with np.load(path) as cached:
        ids = [int(x) for x in cached["layer_ids"]]
        return cached["vectors"], {x: cached["layers"][:, i] for i, x in enumerate(ids)}


def layer_options(options: RouterEvalOptions,
                  available: dict[int, np.ndarray]) -> tuple[tuple[int, ...], float]:
    """Return the layers (validated against the embedder's) and temperature to evaluate."""
    if options.layers is None:
        layers = tuple(learned.LAYERS)
        if not set(layers) <= set(available):  # as the gateway: without them, final only
            layers = ()
    elif options.layers.strip().lower() in ("none", ""):
        layers = ()
    else:
        try:
            layers = tuple(int(x) for x in options.layers.split(","))
        except ValueError as exc:
            raise EvaluationError(f"--layers: {exc}") from exc
    missing = [x for x in layers if x not in available]
    if missing:
        raise EvaluationError(f"The embedder has no pooled layer(s) {missing} "
                              f"(it has {sorted(available)}).")
    temperature = (options.temperature if options.temperature is not None
                   else learned.TEMPERATURE)
    return layers, temperature


def policy_bars(requested: list[float] | None) -> dict[str, float | None]:
    """Return policy rows: name → quality bar at which the margin is swept (margin-only: no bar;
    None: the margin off and the bar swept — the rule before the margin existed)."""
    if requested is None:
        levels = settings.ROUTING_TIER_MIN_QUALITY
        bars = {f"policy {tier} {levels[tier]:.2f}": levels[tier]
                for tier in ("free", "standard", "premium") if tier in levels}
    else:
        if any(not 0.0 <= bar <= 1.0 for bar in requested):
            raise EvaluationError("--min-quality must be between 0 and 1.")
        bars = {f"policy bar {bar:.2f}": bar for bar in requested}
    return {"policy bar-only": None, "policy margin-only": evaluation.NO_BAR, **bars}


def operating_margins(requested: list[float] | None) -> list[float | None]:
    """Return the margins whose operating point to print: None (the rule off: the bar alone, as
    before the margin existed), then the requested ones (default: the configured one)."""
    if requested is None:
        requested = [settings.ROUTING_ESCALATION_MARGIN]
    return [None, *(m for m in requested if m is not None)]
