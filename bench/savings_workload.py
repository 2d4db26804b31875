"""Build the savings bench's labelled workload (issue #23) from router outcomes and QQP pairs.

Two halves, seeded, in random order, as OpenAI Batch lines plus ``"label"``:

* tasks: ``auto`` requests, each a router-outcome prompt drawn with Zipf popularity from the
  prompts split away from the training examples; label ``{"weak_correct", "strong_correct"}``;
* questions: ``bench-strong`` requests, each a QQP duplicate cluster (the connected components of
  the label-1 pairs) drawn with Zipf popularity, then a random member of it; label
  ``{"answer_key": K}`` (the cluster).

Each half's Zipf exponent is solved (bisection) so that 45% of its requests repeat an earlier
task or cluster. The training split is written as outcome rows
for ``import_routing_examples`` (``--examples`` of bench/savings.py); no prompt is in both.

Usage: python -m bench.savings_workload [--data ../shared/data] [--out bench/.cache/savings]
"""

import argparse
import json
import random
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.common import CACHE, ROOT

TASK_MODEL = "auto"
QUESTION_MODEL = "bench-strong"
MAX_TOKENS = 256
TARGET_REPEAT_SHARE = 0.45
REPEAT_TOLERANCE = 0.02


def zipf_probabilities(size: int, exponent: float) -> np.ndarray:
    """Return the Zipf popularity of ranks 1..size (p ∝ rank^-exponent)."""
    weights = np.arange(1, size + 1, dtype=float) ** -exponent
    return weights / weights.sum()


def expected_repeat_share(size: int, exponent: float, draws: int) -> float:
    """Return the expected share of `draws` Zipf draws that repeat an earlier item."""
    p = zipf_probabilities(size, exponent)
    distinct = float(np.sum(1.0 - (1.0 - p) ** draws))
    return 1.0 - distinct / draws


def solve_exponent(size: int, draws: int, target: float = TARGET_REPEAT_SHARE) -> float:
    """Return the Zipf exponent whose expected repeat share over `draws` is `target`.

    The share grows with the exponent (0: uniform), so bisection finds it; a pool too small to
    repeat as little as `target` even when uniform is an error (split fewer prompts away)."""
    low, high = 0.0, 8.0
    if expected_repeat_share(size, low, draws) > target:
        raise ValueError(f"a pool of {size} repeats more than {target:.0%} of {draws} uniform "
                         "draws: give the workload more distinct items")
    if expected_repeat_share(size, high, draws) < target:
        raise ValueError(f"no Zipf exponent up to {high} repeats {target:.0%}")
    for _ in range(60):
        middle = (low + high) / 2
        if expected_repeat_share(size, middle, draws) < target:
            low = middle
        else:
            high = middle
    return (low + high) / 2


def zipf_draws(size: int, exponent: float, uniforms: Sequence[float],
               ranked: Sequence[int]) -> list[int]:
    """Map `uniforms` to item indexes with Zipf popularity; `ranked[r]` is the item of rank r."""
    cumulative = np.cumsum(zipf_probabilities(size, exponent))
    ranks = np.searchsorted(cumulative, uniforms, side="right")
    return [ranked[min(int(r), size - 1)] for r in ranks]


def zipf_sample(size: int, draws: int, rng: random.Random,
                target: float = TARGET_REPEAT_SHARE) -> tuple[float, list[int]]:
    """Draw `draws` items of a `size` pool with Zipf popularity (random item per rank), the
    exponent solved so that `target` of the draws repeat an earlier one: the expected share's
    solution, or — when this sample strays beyond the tolerance (a few thousand draws can) —
    bisection on the sample's own share."""
    ranked = list(range(size))
    rng.shuffle(ranked)
    uniforms = [rng.random() for _ in range(draws)]
    exponent = solve_exponent(size, draws, target)
    picks = zipf_draws(size, exponent, uniforms, ranked)
    if abs(repeat_share(picks) - target) <= REPEAT_TOLERANCE / 2:
        return exponent, picks
    low, high = 0.0, 2 * exponent + 0.5
    for _ in range(40):
        middle = (low + high) / 2
        if repeat_share(zipf_draws(size, middle, uniforms, ranked)) < target:
            low = middle
        else:
            high = middle
    return high, zipf_draws(size, high, uniforms, ranked)


def repeat_share(items: Sequence) -> float:
    """Return the share of `items` equal to an earlier one."""
    return 1.0 - len(set(items)) / len(items) if items else 0.0


def qqp_clusters(pairs: list[dict]) -> list[list[str]]:
    """Return the connected components of the label-1 pairs (each a sorted list of questions)."""
    parent: dict[str, str] = {}

    def root(text: str) -> str:
        parent.setdefault(text, text)
        while parent[text] != text:
            parent[text] = parent[parent[text]]
            text = parent[text]
        return text

    for pair in pairs:
        if int(pair["label"]) == 1 and pair["text_a"] != pair["text_b"]:
            parent[root(pair["text_a"])] = root(pair["text_b"])
    members: dict[str, list[str]] = {}
    for text in parent:
        members.setdefault(root(text), []).append(text)
    return sorted((sorted(group) for group in members.values()), key=lambda g: g[0])


def unique_outcomes(rows: list[dict]) -> list[dict]:
    """Return the outcome rows with one row per prompt (the first), in file order."""
    seen: set[str] = set()
    out = []
    for row in rows:
        if row["prompt"] not in seen:
            seen.add(row["prompt"])
            out.append(row)
    return out


def batch_line(custom_id: str, model: str, prompt: str, label: dict) -> dict:
    """Return one Batch input line with its label."""
    return {"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions",
            "body": {"model": model, "messages": [{"role": "user", "content": prompt}],
                     "max_tokens": MAX_TOKENS},
            "label": label}


@dataclass
class Workload:
    lines: list[dict]
    examples: list[dict]
    stats: dict


def build(outcomes: list[dict], pairs: list[dict], *, requests: int = 10_000, seed: int = 0,
          train_share: float = 0.4, target: float = TARGET_REPEAT_SHARE) -> Workload:
    """Build the workload (half tasks, half questions) and the training examples."""
    rng = random.Random(seed)
    tasks = unique_outcomes(outcomes)
    rng.shuffle(tasks)
    n_train = round(len(tasks) * train_share)
    examples = [{"prompt": r["prompt"], "weak_correct": int(bool(r["weak_correct"])),
                 "strong_correct": int(bool(r["strong_correct"]))} for r in tasks[:n_train]]
    pool = tasks[n_train:]
    clusters = qqp_clusters(pairs)
    n_tasks = requests // 2
    n_questions = requests - n_tasks

    task_exponent, task_picks = zipf_sample(len(pool), n_tasks, rng, target)
    cluster_exponent, cluster_picks = zipf_sample(len(clusters), n_questions, rng, target)

    lines = []
    for i in task_picks:
        row = pool[i]
        lines.append(batch_line("", TASK_MODEL, row["prompt"],
                                {"weak_correct": int(bool(row["weak_correct"])),
                                 "strong_correct": int(bool(row["strong_correct"]))}))
    for c in cluster_picks:
        lines.append(batch_line("", QUESTION_MODEL, rng.choice(clusters[c]),
                                {"answer_key": f"qqp-{c}"}))
    rng.shuffle(lines)
    for n, line in enumerate(lines):
        line["custom_id"] = f"savings-{n:05d}"
    stats = {"seed": seed, "requests": len(lines), "train_examples": len(examples),
             "task_pool": len(pool), "qqp_clusters": len(clusters),
             "task_exponent": round(task_exponent, 4),
             "cluster_exponent": round(cluster_exponent, 4),
             "task_repeat_share": round(repeat_share(task_picks), 4),
             "question_repeat_share": round(repeat_share(cluster_picks), 4)}
    for half in ("task_repeat_share", "question_repeat_share"):
        if abs(stats[half] - target) > REPEAT_TOLERANCE:
            raise ValueError(f"{half} {stats[half]} is outside {target} ± {REPEAT_TOLERANCE}")
    return Workload(lines, examples, stats)


def read_jsonl(path: Path) -> list[dict]:
    with open(path) as handle:
        return [json.loads(line) for line in handle if line.strip()]


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data",
                        help="Folder with router_outcomes_dev.jsonl and qqp_pairs_dev.jsonl.")
    parser.add_argument("--out", type=Path, default=CACHE / "savings",
                        help="Output folder (keep it under bench/.cache: never commit it).")
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train-share", type=float, default=0.4,
                        help="Share of the router-outcome prompts kept as training examples.")
    args = parser.parse_args()
    workload = build(read_jsonl(args.data / "router_outcomes_dev.jsonl"),
                     read_jsonl(args.data / "qqp_pairs_dev.jsonl"),
                     requests=args.requests, seed=args.seed, train_share=args.train_share)
    write_jsonl(args.out / "workload.jsonl", workload.lines)
    write_jsonl(args.out / "outcomes.jsonl", workload.examples)
    stats = {**workload.stats, "workload": str(args.out / "workload.jsonl"),
             "examples": str(args.out / "outcomes.jsonl")}
    sys.stdout.write(json.dumps(stats) + "\n")


if __name__ == "__main__":
    main()
