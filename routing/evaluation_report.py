"""The report of a router evaluation (routing.evaluation_run): one JSON object, or text tables."""

import numpy as np
from django.conf import settings

from routing import evaluation
from routing.evaluation_run import RouterEvaluation


def evaluation_json(result: RouterEvaluation) -> dict:
    """Return the run as one JSON object: apgr, cpt50, cpt80 of the learned router first."""
    summary = result.summary
    return {
        **{key: summary["learned"][key] for key in ("apgr", "cpt50", "cpt80")},
        "folds": len(result.split_names), "k": result.k, "layers": list(result.layers),
        "temperature": result.temperature if result.layers else None,
        "formats": result.formats,
        "baselines": {name: summary[name] for name in ("weak-only", "random", "keyword")},
        "learned": summary["learned"],
        "splits": [{"name": name, **evaluation.curve_metrics(curve)}
                   for name, curve in zip(result.split_names, result.learned_curves,
                                          strict=True)],
        # The gateway's rule (routing.policy.choose), swept over the escalation margin
        # per quality bar, and its operating point at the given margins.
        "policy": {"escalation_margin": settings.ROUTING_ESCALATION_MARGIN,
                   "rules": result.policy, "operating_points": result.operating},
    }


def evaluation_lines(result: RouterEvaluation) -> list[str]:
    """Return the run as text lines: the routers, the policy rows, the learned router per
    split."""
    lines = [
        f"Routing between {result.weak_profile.name} (weak) and {result.strong_profile.name} "
        f"(strong) prices, {result.output_tokens} output tokens per call; "
        f"{len(result.split_names)} split(s).",
        f"{'router':<10}{'APGR':>8}{'CPT(50%)':>10}{'CPT(80%)':>10}"
        f"{'$/1k@CPT50':>12}{'$/1k@CPT80':>12}{'$/1k weak':>11}{'$/1k strong':>12}",
    ]
    for name, row in result.summary.items():
        lines.append(
            f"{name:<10}{row['apgr']:>8.3f}{row['cpt50']:>10.1%}{row['cpt80']:>10.1%}"
            f"{row['cost_per_1k_cpt50']:>12.4f}{row['cost_per_1k_cpt80']:>12.4f}"
            f"{row['cost_per_1k_all_weak']:>11.4f}{row['cost_per_1k_all_strong']:>12.4f}")
    lines.append("APGR: area under PGR vs strong-call share (random ≈ 0.5); "
                 "CPT(x): strong-call share needed to recover x of the accuracy gap.")
    lines.append(
        "Gateway policy (routing.policy.choose): escalate to the strong model when the weak "
        "one is predicted below the bar and P(strong) - P(weak) exceeds the margin. "
        "bar-only: margin off, bar swept (the rule before the margin); the other rows sweep "
        "the margin at one bar (past the last escalation, the curve runs straight to "
        "all-strong).")
    lines.append(f"{'rule':<22}{'APGR':>8}{'CPT(50%)':>10}{'CPT(80%)':>10}"
                 f"{'$/1k@CPT50':>12}{'$/1k@CPT80':>12}")
    for name, row in result.policy.items():
        lines.append(
            f"{name:<22}{row['apgr']:>8.3f}{row['cpt50']:>10.1%}{row['cpt80']:>10.1%}"
            f"{row['cost_per_1k_cpt50']:>12.4f}{row['cost_per_1k_cpt80']:>12.4f}")
    lines.append(f"{'at margin':<22}{'margin':>8}{'strong':>10}{'PGR':>10}"
                 f"{'accuracy':>12}{'$/1k':>12}")
    for point in result.operating:
        lines.append(
            f"{point['rule']:<22}{_margin_text(point['escalation_margin']):>8}"
            f"{point['strong_share']:>10.1%}{point['pgr']:>10.3f}"
            f"{point['accuracy']:>12.4f}{point['cost_per_1k']:>12.4f}")
    curves = result.learned_curves
    lines.append("learned per split: " + ", ".join(
        f"{name} {curve.apgr:.3f}/{curve.cpt80:.1%}"
        for name, curve in zip(result.split_names, curves, strict=True))
        + f" (APGR/CPT(80%); APGR sd {np.std([c.apgr for c in curves]):.3f})")
    return lines


def _margin_text(margin: float | None) -> str:
    return "off" if margin is None else f"{margin:.3f}"
