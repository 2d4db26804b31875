"""Measure the learned router with neighbour rates in intermediate MiniLM layers (issue #5).

    OMP_NUM_THREADS=2 DEBUG=1 nice -n 19 .venv/bin/python bench/routing_layers.py \
        [OUTCOMES.jsonl] [--folds 5] [--seed 0] [--repeats 3] [--layers 3,5] [--temperature 1.5]

The production model (routing.learned.OutcomeModel) ranks by P(strong) − P(weak), each the mean
of a word regression and a neighbour-rate regression in the final sentence embedding. Here the
neighbour member is also fitted in the mean-pooled hidden states of other layers (what the
semantic cache's embedder computes on the way, but does not return), and the members' logits
are recombined: sum over members of σ(T·z_strong) − σ(T·z_weak). Every fit sees training rows
only. Prints each variant's mean APGR / CPT(50%) / CPT(80%) and its paired APGR difference from
production per split. The pooled states are cached under bench/.cache/ (git-ignored); the first
run encodes every prompt once through the torch model (minutes on 2 cores).
"""

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.common import add_cv_arguments, offline_django_env  # noqa: E402  (needs ROOT on sys.path)

offline_django_env()

FINAL = 6  # MiniLM-L6's last layer: the production embedding's space


def pooled_layers(texts: list[str], cache_dir: Path):
    """Return a `(layers + 1, n, 384)` float32 array: per hidden state (0 = token embeddings),
    each text's mean over its tokens (sentence-transformers' pooling, 256-token truncation),
    L2-normalised. Cached on disk by content (bench/routing_pooling.py computes it)."""
    from bench.routing_pooling import pooled_states

    return pooled_states(texts, cache_dir)["mean"]


def main() -> None:
    import django

    django.setup()
    import numpy as np

    from routing.evaluation import curve, kfold_indices, load_outcomes
    from routing.learned import OutcomeModel

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_cv_arguments(parser, repeats=1)
    parser.add_argument("--layers", default="3,5", help="Comma-separated layers (1-5).")
    parser.add_argument("--temperature", type=float, default=1.5,
                        help="Logit scale T of the recombined variants.")
    args = parser.parse_args()
    layers = [int(x) for x in args.layers.split(",")]

    rows = load_outcomes(args.file)
    texts = [o.prompt for o in rows]
    prompts = sorted(set(texts))
    row_of = {p: i for i, p in enumerate(prompts)}
    states = pooled_layers(prompts, ROOT / "bench" / ".cache")[:, [row_of[t] for t in texts]]
    targets = {"w": np.array([o.weak_correct for o in rows], dtype=float),
               "s": np.array([o.strong_correct for o in rows], dtype=float)}

    def recombined(members: list[dict], t: float) -> np.ndarray:
        return sum(1 / (1 + np.exp(-t * m["s"])) - 1 / (1 + np.exp(-t * m["w"]))
                   for m in members)

    results: dict[str, list[tuple[float, float, float]]] = {}
    for seed in range(args.seed, args.seed + args.repeats):
        for train, test in kfold_indices(len(rows), args.folds, seed):
            train_texts, test_texts = [texts[i] for i in train], [texts[i] for i in test]
            stacks, text = {}, {}
            for layer in [FINAL, *layers]:
                stacks[layer] = {}
                for key, scores in targets.items():
                    model = OutcomeModel().fit(train_texts, states[layer, train], scores[train])
                    words, rates = model.member_logits(test_texts, states[layer, test])
                    stacks[layer][key] = rates
                    if layer == FINAL:  # the word member does not depend on the space
                        text[key] = words
            t = args.temperature
            named = ", ".join(f"L{layer}" for layer in layers)
            variants = {
                "production (words + L6)": recombined([text, stacks[FINAL]], 1.0),
                f"production at T={t}": recombined([text, stacks[FINAL]], t),
                f"words + {named}": recombined([text] + [stacks[x] for x in layers], 1.0),
                f"words + {named} at T={t}": recombined([text] + [stacks[x] for x in layers], t),
                f"words + {named} + L6 at T={t}": recombined(
                    [text, stacks[FINAL]] + [stacks[x] for x in layers], t),
            }
            for name, scores in variants.items():
                c = curve(scores, targets["w"][test], targets["s"][test])
                results.setdefault(name, []).append((c.apgr, c.cpt50, c.cpt80))
    base = np.array(results["production (words + L6)"])
    print(f"{len(base)} splits ({args.folds} folds, seeds {args.seed}..."
          f"{args.seed + args.repeats - 1})")
    for name, values in results.items():
        values = np.array(values)
        diff = values[:, 0] - base[:, 0]
        print(f"{name:<36} APGR {values[:, 0].mean():.4f}  CPT(50%) {values[:, 1].mean():.1%}  "
              f"CPT(80%) {values[:, 2].mean():.1%}  ΔAPGR {diff.mean():+.4f} "
              f"(wins {int(np.sum(diff > 0))}/{len(diff)})")


if __name__ == "__main__":
    main()
