"""Evaluate the learned router against random and the seed's keyword baseline (RouteLLM metrics),
and the gateway's own policy rule (`routing.policy.choose`) on the same predictions."""

import hashlib
import json as _json
from decimal import Decimal
from pathlib import Path

import numpy as np
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError

from routing import evaluation, learned
from routing.defaults import all_default_profiles
from routing.models import ModelProfile
from routing.pricing import max_cost
from routing.tokens import estimate_prompt_tokens


class Command(BaseCommand):
    help = ("Route every test prompt between a weak and a strong model, sweep the threshold and "
            "print APGR, CPT(50%) and CPT(80%) with costs, for the learned router and the "
            "random and keyword baselines, and for the gateway's policy rule (routing.policy."
            "choose) swept over the escalation margin at each quality bar. Use --train A --test "
            "B, or --folds N FILE.")

    def add_arguments(self, parser):
        parser.add_argument("file", nargs="?", help="Outcomes JSONL for --folds.")
        parser.add_argument("--train", help="Outcomes JSONL to learn from.")
        parser.add_argument("--test", help="Outcomes JSONL to evaluate on.")
        parser.add_argument("--folds", type=int, default=0,
                            help="Cross-validate on FILE with this many folds (e.g. 5).")
        parser.add_argument("--k", type=int, default=None,
                            help="Neighbourhood scale k of the learned model: rates at k/8, k/3, k "
                                 f"and 4k neighbours (default {learned.K}, the gateway's).")
        parser.add_argument("--weak-model", default="gpt-4o-mini",
                            help="Profile whose prices stand for the weak model.")
        parser.add_argument("--strong-model", default="gpt-4o",
                            help="Profile whose prices stand for the strong model.")
        parser.add_argument("--output-tokens", type=int, default=256,
                            help="Answer length assumed per call when costing (tokens).")
        parser.add_argument("--cache-dir", default=str(settings.BASE_DIR / "bench" / ".cache"),
                            help="Where prompt embeddings are cached between runs.")
        parser.add_argument("--seed", type=int, default=0, help="Seed for folds and random.")
        parser.add_argument("--repeats", type=int, default=1,
                            help="With --folds: repeat the cross-validation with this many fold "
                                 "seeds (seed, seed+1, ...) and average every split; one lucky "
                                 "shuffle then cannot carry the result.")
        parser.add_argument("--min-quality", type=float, action="append", default=None,
                            help="Quality bar of a policy row (repeatable; default the free, "
                                 "standard and premium tier bars of ROUTING_TIER_MIN_QUALITY). "
                                 "A margin-only row (no bar) is always printed.")
        parser.add_argument("--margin", type=float, action="append", default=None,
                            help="Escalation margin whose operating point to print for every "
                                 "policy row (repeatable; default ROUTING_ESCALATION_MARGIN), "
                                 "beside the rule off (the bar alone).")
        parser.add_argument("--layers", default=None,
                            help="Comma-separated intermediate MiniLM layers the learned model "
                                 "predicts from (default "
                                 f"{','.join(map(str, learned.LAYERS))}, the gateway's); 'none': "
                                 "the final embedding only, as for a request without them.")
        parser.add_argument("--temperature", type=float, default=None,
                            help="Logit scale of the layered prediction "
                                 f"(default {learned.TEMPERATURE}, the gateway's).")
        parser.add_argument("--formats", choices=("on", "off"), default=None,
                            help="Members of its own per prompt format (multiple-choice, open) "
                                 "(default on, as the gateway).")
        parser.add_argument("--json", action="store_true",
                            help="Print one JSON object (apgr, cpt50, cpt80 of the learned "
                                 "router, plus baselines).")

    def handle(self, *args, **opts):
        k = opts["k"] or learned.K
        names, splits = self._splits(opts)
        bars = _policy_bars(opts["min_quality"])
        margins = _operating_margins(opts["margin"])
        cache_dir = Path(opts["cache_dir"])
        results: dict[str, list[evaluation.Curve]] = {
            "learned": [], "weak-only": [], "random": [], "keyword": []}
        costs: dict[str, list[dict]] = {name: [] for name in results}
        weak_profile, strong_profile = (_profile(opts["weak_model"]),
                                        _profile(opts["strong_model"]))
        if weak_profile.name == strong_profile.name:
            raise CommandError("--weak-model and --strong-model must name different profiles.")
        # The gateway's rule: routing.policy.choose between the two profiles, per quality bar.
        policy_rows = {name: [] for name in bars}
        policy_costs: dict[str, list[dict]] = {name: [] for name in bars}
        points: dict[tuple[str, float], list[dict]] = {
            (name, margin): [] for name, bar in bars.items() if bar is not None
            for margin in margins}
        # Embed every distinct prompt once (and cache it): folds then only index into it.
        prompts = sorted({o.prompt for train, test in splits for o in train + test})
        all_vectors, all_layers = _embeddings(prompts, cache_dir)
        layers, temperature = _layer_options(opts, all_layers)
        formats = (learned.FORMATS if opts["formats"] is None
                   else opts["formats"] == "on")
        row_of = {prompt: i for i, prompt in enumerate(prompts)}
        for index, (train, test) in enumerate(splits):
            train_rows = [row_of[o.prompt] for o in train]
            test_rows = [row_of[o.prompt] for o in test]
            train_vectors, test_vectors = all_vectors[train_rows], all_vectors[test_rows]
            weak = np.array([o.weak_correct for o in test])
            strong = np.array([o.strong_correct for o in test])
            rng = np.random.default_rng(opts["seed"] + index)
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
                "random": evaluation.random_scores(len(test), seed=opts["seed"] + index),
                # Within one complexity level the seed's choice is arbitrary: break ties at random.
                "keyword": np.array([evaluation.keyword_complexity(o.prompt) for o in test])
                + rng.random(len(test)) * 1e-3,
            }
            needs = _needs(test, opts["output_tokens"])
            call_costs = _call_costs(test, weak_profile, strong_profile, opts["output_tokens"])
            for name, router_scores in scores.items():
                curve = evaluation.curve(router_scores, weak, strong)
                results[name].append(curve)
                costs[name].append(_costs_at(curve, router_scores, call_costs))
            grid = evaluation.margin_grid(p_weak, p_strong)
            for name, bar in bars.items():
                steps = (evaluation.bar_sweep(p_weak) if bar is None
                         else evaluation.margin_sweep(bar, grid))
                router_scores = evaluation.policy_scores(
                    weak_profile, strong_profile, needs, p_weak, p_strong, steps=steps)
                curve = evaluation.curve(router_scores, weak, strong)
                policy_rows[name].append(curve)
                policy_costs[name].append(_costs_at(curve, router_scores, call_costs))
                for margin in margins if bar is not None else []:
                    sends = evaluation.policy_sends_strong(
                        weak_profile, strong_profile, needs, p_weak, p_strong, min_quality=bar,
                        escalation_margin=margin)
                    points[name, margin].append(_operating_point(sends, weak, strong,
                                                                 call_costs))
        summary = {name: _summarize(curves, costs[name]) for name, curves in results.items()}
        policy_summary = {
            name: {"min_quality": None if bars[name] in (None, evaluation.NO_BAR) else bars[name],
                   "swept": "min_quality" if bars[name] is None else "escalation_margin",
                   **_summarize(curves, policy_costs[name])}
            for name, curves in policy_rows.items()}
        operating = [{"rule": name, "min_quality": policy_summary[name]["min_quality"],
                      "escalation_margin": margin, **_mean_point(rows)}
                     for (name, margin), rows in points.items()]
        if opts["json"]:
            self.stdout.write(_json.dumps({
                **{key: summary["learned"][key] for key in ("apgr", "cpt50", "cpt80")},
                "folds": len(splits), "k": k, "layers": list(layers),
                "temperature": temperature if layers else None, "formats": formats,
                "baselines": {name: summary[name] for name in ("weak-only", "random", "keyword")},
                "learned": summary["learned"],
                "splits": [{"name": name, **_metrics(curve)}
                           for name, curve in zip(names, results["learned"], strict=True)],
                # The gateway's rule (routing.policy.choose), swept over the escalation margin
                # per quality bar, and its operating point at the given margins.
                "policy": {"escalation_margin": settings.ROUTING_ESCALATION_MARGIN,
                           "rules": policy_summary, "operating_points": operating},
            }, indent=2))
            return
        self._print(summary, len(splits), weak_profile, strong_profile, opts["output_tokens"])
        self._print_policy(policy_summary, operating)
        self.stdout.write("learned per split: " + ", ".join(
            f"{name} {curve.apgr:.3f}/{curve.cpt80:.1%}"
            for name, curve in zip(names, results["learned"], strict=True))
            + f" (APGR/CPT(80%); APGR sd {np.std([c.apgr for c in results['learned']]):.3f})")

    def _splits(self, opts) -> tuple[list[str], list[tuple[list, list]]]:
        """Return split names ("s<seed>f<fold>" or "test") and (train, test) outcome lists."""
        try:
            if opts["folds"]:
                if not opts["file"]:
                    raise CommandError("--folds needs a FILE.")
                if opts["repeats"] < 1:
                    raise CommandError("--repeats must be at least 1.")
                rows = evaluation.load_outcomes(opts["file"])
                names, splits = [], []
                for seed in range(opts["seed"], opts["seed"] + opts["repeats"]):
                    folds = evaluation.kfold_indices(len(rows), opts["folds"], seed)
                    for fold, (train, test) in enumerate(folds):
                        names.append(f"s{seed}f{fold}")
                        splits.append(([rows[i] for i in train], [rows[i] for i in test]))
                return names, splits
            if not (opts["train"] and opts["test"]):
                raise CommandError("Give --train A --test B, or --folds N FILE.")
            return ["test"], [(evaluation.load_outcomes(opts["train"]),
                               evaluation.load_outcomes(opts["test"]))]
        except (OSError, ValueError) as exc:
            raise CommandError(str(exc)) from exc

    def _print(self, summary, folds, weak_profile, strong_profile, output_tokens) -> None:
        self.stdout.write(
            f"Routing between {weak_profile.name} (weak) and {strong_profile.name} (strong) "
            f"prices, {output_tokens} output tokens per call; {folds} split(s).")
        self.stdout.write(f"{'router':<10}{'APGR':>8}{'CPT(50%)':>10}{'CPT(80%)':>10}"
                          f"{'$/1k@CPT50':>12}{'$/1k@CPT80':>12}{'$/1k weak':>11}"
                          f"{'$/1k strong':>12}")
        for name, row in summary.items():
            self.stdout.write(
                f"{name:<10}{row['apgr']:>8.3f}{row['cpt50']:>10.1%}{row['cpt80']:>10.1%}"
                f"{row['cost_per_1k_cpt50']:>12.4f}{row['cost_per_1k_cpt80']:>12.4f}"
                f"{row['cost_per_1k_all_weak']:>11.4f}{row['cost_per_1k_all_strong']:>12.4f}")
        self.stdout.write("APGR: area under PGR vs strong-call share (random ≈ 0.5); "
                          "CPT(x): strong-call share needed to recover x of the accuracy gap.")

    def _print_policy(self, rules: dict, operating: list[dict]) -> None:
        self.stdout.write(
            "Gateway policy (routing.policy.choose): escalate to the strong model when the weak "
            "one is predicted below the bar and P(strong) - P(weak) exceeds the margin. "
            "bar-only: margin off, bar swept (the rule before the margin); the other rows sweep "
            "the margin at one bar (past the last escalation, the curve runs straight to "
            "all-strong).")
        self.stdout.write(f"{'rule':<22}{'APGR':>8}{'CPT(50%)':>10}{'CPT(80%)':>10}"
                          f"{'$/1k@CPT50':>12}{'$/1k@CPT80':>12}")
        for name, row in rules.items():
            self.stdout.write(
                f"{name:<22}{row['apgr']:>8.3f}{row['cpt50']:>10.1%}{row['cpt80']:>10.1%}"
                f"{row['cost_per_1k_cpt50']:>12.4f}{row['cost_per_1k_cpt80']:>12.4f}")
        self.stdout.write(f"{'at margin':<22}{'margin':>8}{'strong':>10}{'PGR':>10}"
                          f"{'accuracy':>12}{'$/1k':>12}")
        for point in operating:
            self.stdout.write(
                f"{point['rule']:<22}{_margin_text(point['escalation_margin']):>8}"
                f"{point['strong_share']:>10.1%}{point['pgr']:>10.3f}"
                f"{point['accuracy']:>12.4f}{point['cost_per_1k']:>12.4f}")


def _profile(name: str):
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
    raise CommandError(f"Unknown profile {name!r} (run load_default_models, or pick another).")


def _embeddings(texts: list[str], cache_dir: Path) -> tuple[np.ndarray, dict[int, np.ndarray]]:
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


def _layer_options(opts, available: dict[int, np.ndarray]) -> tuple[tuple[int, ...], float]:
    """Return the layers (validated against the embedder's) and temperature to evaluate."""
    if opts["layers"] is None:
        layers = tuple(learned.LAYERS)
        if not set(layers) <= set(available):  # as the gateway: without them, final only
            layers = ()
    elif opts["layers"].strip().lower() in ("none", ""):
        layers = ()
    else:
        try:
            layers = tuple(int(x) for x in opts["layers"].split(","))
        except ValueError as exc:
            raise CommandError(f"--layers: {exc}") from exc
    missing = [x for x in layers if x not in available]
    if missing:
        raise CommandError(f"The embedder has no pooled layer(s) {missing} "
                           f"(it has {sorted(available)}).")
    temperature = (opts["temperature"] if opts["temperature"] is not None
                   else learned.TEMPERATURE)
    return layers, temperature


def _policy_bars(requested: list[float] | None) -> dict[str, float | None]:
    """Return policy rows: name → quality bar at which the margin is swept (margin-only: no bar;
    None: the margin off and the bar swept — the rule before the margin existed)."""
    if requested is None:
        levels = settings.ROUTING_TIER_MIN_QUALITY
        bars = {f"policy {tier} {levels[tier]:.2f}": levels[tier]
                for tier in ("free", "standard", "premium") if tier in levels}
    else:
        if any(not 0.0 <= bar <= 1.0 for bar in requested):
            raise CommandError("--min-quality must be between 0 and 1.")
        bars = {f"policy bar {bar:.2f}": bar for bar in requested}
    return {"policy bar-only": None, "policy margin-only": evaluation.NO_BAR, **bars}


def _operating_margins(requested: list[float] | None) -> list[float | None]:
    """Return the margins whose operating point to print: None (the rule off: the bar alone, as
    before the margin existed), then the requested ones (default: the configured one)."""
    if requested is None:
        requested = [settings.ROUTING_ESCALATION_MARGIN]
    return [None, *(m for m in requested if m is not None)]


def _margin_text(margin: float | None) -> str:
    return "off" if margin is None else f"{margin:.3f}"


def _needs(test, output_tokens: int) -> list:
    """Return each test prompt's `policy.Needs`, as the gateway builds it for one user message."""
    from routing import policy

    rows = []
    for outcome in test:
        messages = [{"role": "user", "content": outcome.prompt}]
        openai = estimate_prompt_tokens(messages, provider="openai")
        rows.append(policy.Needs(
            prompt_tokens={"openai": openai, "openai_compatible": openai,
                           "anthropic": estimate_prompt_tokens(messages, provider="anthropic")},
            max_output_tokens=output_tokens))
    return rows


def _operating_point(sends: np.ndarray, weak: np.ndarray, strong: np.ndarray,
                     call_costs: np.ndarray) -> dict:
    """Return strong share, accuracy, PGR and cost per 1,000 prompts of one routing."""
    weak = weak.astype(np.float64)
    strong = strong.astype(np.float64)
    accuracy = float(np.where(sends, strong, weak).mean())
    gap = strong.mean() - weak.mean()
    return {"strong_share": float(sends.mean()), "accuracy": accuracy,
            "pgr": float((accuracy - weak.mean()) / gap) if gap else 1.0,
            "cost_per_1k": float(np.where(sends, call_costs[:, 1], call_costs[:, 0]).mean()
                                 * 1000)}


def _mean_point(points: list[dict]) -> dict:
    return {key: round(float(np.mean([p[key] for p in points])), 4) for key in points[0]}


def _call_costs(test, weak_profile, strong_profile, output_tokens: int) -> np.ndarray:
    """Return (n, 2) USD per call of each test prompt on the weak and the strong profile."""
    rows = []
    for outcome in test:
        messages = [{"role": "user", "content": outcome.prompt}]
        rows.append([float(max_cost(p, prompt_tokens=estimate_prompt_tokens(
            messages, provider=p.provider), max_output_tokens=output_tokens))
            for p in (weak_profile, strong_profile)])
    return np.array(rows)


def _costs_at(curve: evaluation.Curve, scores: np.ndarray, call_costs: np.ndarray) -> dict:
    """Return cost per 1,000 prompts at CPT(50%), CPT(80%), all-weak and all-strong."""
    order = np.argsort(-scores, kind="stable")
    n = len(scores)

    def at(share: float) -> float:
        strong_count = int(round(share * n))
        strong_rows = order[:strong_count]
        total = call_costs[:, 0].sum() - call_costs[strong_rows, 0].sum() \
            + call_costs[strong_rows, 1].sum()
        return float(Decimal(total * 1000 / n).quantize(Decimal("0.0001")))

    return {"cost_per_1k_cpt50": at(curve.cpt50), "cost_per_1k_cpt80": at(curve.cpt80),
            "cost_per_1k_all_weak": at(0.0), "cost_per_1k_all_strong": at(1.0)}


def _metrics(curve: evaluation.Curve) -> dict:
    return {"apgr": round(curve.apgr, 4), "cpt50": round(curve.cpt50, 4),
            "cpt80": round(curve.cpt80, 4)}


def _summarize(curves: list[evaluation.Curve], costs: list[dict]) -> dict:
    """Return mean metrics over splits."""
    row = {"apgr": float(np.mean([c.apgr for c in curves])),
           "apgr_capped": float(np.mean([np.trapezoid(np.minimum(c.pgr, 1.0), c.shares)
                                         for c in curves])),
           "cpt50": float(np.mean([c.cpt50 for c in curves])),
           "cpt80": float(np.mean([c.cpt80 for c in curves]))}
    for key in costs[0]:
        row[key] = float(np.mean([c[key] for c in costs]))
    return {k: round(v, 4) for k, v in row.items()}
