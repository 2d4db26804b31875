"""Search the learned router's member combinations on cached out-of-fold logits (issue #5).

    OMP_NUM_THREADS=2 DEBUG=1 nice -n 19 .venv/bin/python bench/routing_members.py \
        [OUTCOMES.jsonl] [--folds 5] [--seed 0] [--repeats 3] [--top 15]

For every split it fits, on the training rows only, the words member and one neighbour member
per hidden state (0 = token embeddings … 6 = the final embedding, mean-pooled as
bench/routing_layers.py computes them), for the weak and the strong target, and keeps the test
rows' logits (cached under bench/.cache/). Then it scores every combination of the words member
and up to four layers at several temperatures, as production combines members (sum over members
of σ(T·z_strong) − σ(T·z_weak)), and prints the best by mean APGR with the paired difference
from the production combination (words + layers 3, 5 at T = 1.5) per split. Choosing among many
combinations on the same splits is optimistic: read a gain smaller than its spread as noise.
"""

import argparse
import hashlib
import itertools
import os
import pickle
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.common import add_cv_arguments  # noqa: E402  (needs ROOT on sys.path)

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "llmops.settings.base")
os.environ.setdefault("DEBUG", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

TEMPERATURES = (1.0, 1.5, 2.0, 3.0)
PRODUCTION = (("words", 3, 5), 1.5)


def split_logits(texts, states, targets, splits, cache: Path, *, k: int):
    """Return, per split, {"test": indices, member: {"w": logits, "s": logits}} (cached)."""
    if cache.exists():
        with open(cache, "rb") as handle:
            return pickle.load(handle)
    from routing.features import feature_matrix
    from routing.learned import OutcomeModel, _NeighbourMember, neighbour_ladder

    features = feature_matrix(texts)
    out = []
    for number, (train, test) in enumerate(splits):
        train_texts, test_texts = [texts[i] for i in train], [texts[i] for i in test]
        entry = {"test": test}
        for key, scores in targets.items():
            model = OutcomeModel(k=k).fit(train_texts, states[6, train], scores[train])
            words, _ = model.member_logits(test_texts, states[6, test], features=features[test])
            entry.setdefault("words", {})[key] = words
            for layer in range(states.shape[0]):
                member = _NeighbourMember(states[layer, train], scores[train], features[train],
                                          ks=neighbour_ladder(k), c=model.stack_c)
                entry.setdefault(layer, {})[key] = member.logits(states[layer, test],
                                                                 features[test])
        out.append(entry)
        print(f"split {number + 1}/{len(splits)} fitted", flush=True)
    cache.parent.mkdir(parents=True, exist_ok=True)
    with open(cache, "wb") as handle:
        pickle.dump(out, handle)
    return out


def main() -> None:
    import django

    django.setup()
    import numpy as np

    from bench.routing_layers import pooled_layers
    from routing.evaluation import curve, kfold_indices, load_outcomes

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_cv_arguments(parser, repeats=3)
    parser.add_argument("--k", type=int, default=80)
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args()

    rows = load_outcomes(args.file)
    texts = [o.prompt for o in rows]
    prompts = sorted(set(texts))
    row_of = {p: i for i, p in enumerate(prompts)}
    states = pooled_layers(prompts, ROOT / "bench" / ".cache")[:, [row_of[t] for t in texts]]
    targets = {"w": np.array([o.weak_correct for o in rows], dtype=float),
               "s": np.array([o.strong_correct for o in rows], dtype=float)}
    splits = [s for seed in range(args.seed, args.seed + args.repeats)
              for s in kfold_indices(len(rows), args.folds, seed)]
    key = hashlib.sha256(f"{args.file}|{args.folds}|{args.seed}|{args.repeats}|{args.k}|"
                         f"{len(rows)}".encode()).hexdigest()[:16]
    logits = split_logits(texts, states, targets, splits,
                          ROOT / "bench" / ".cache" / f"router-members-{key}.pkl", k=args.k)

    def score(members: tuple, t: float) -> np.ndarray:
        """APGR, CPT(50%), CPT(80%) per split for one combination."""
        values = []
        for entry in logits:
            test = entry["test"]
            s = sum(1 / (1 + np.exp(-t * entry[m]["s"])) - 1 / (1 + np.exp(-t * entry[m]["w"]))
                    for m in members)
            c = curve(s, targets["w"][test], targets["s"][test])
            values.append((c.apgr, c.cpt50, c.cpt80))
        return np.array(values)

    layers = range(states.shape[0])
    combos = [("words", *c) for size in range(1, 5) for c in itertools.combinations(layers, size)]
    combos += [c for size in range(1, 4) for c in itertools.combinations(layers, size)]
    base = score(*PRODUCTION)
    results = []
    for members in combos:
        for t in TEMPERATURES:
            values = score(members, t)
            diff = values[:, 0] - base[:, 0]
            results.append((values[:, 0].mean(), members, t, values, diff))
    results.sort(key=lambda r: -r[0])
    print(f"{len(logits)} splits; production {PRODUCTION}: APGR {base[:, 0].mean():.4f} "
          f"CPT(50%) {base[:, 1].mean():.1%} CPT(80%) {base[:, 2].mean():.1%}")
    for mean, members, t, values, diff in results[:args.top]:
        name = "+".join(str(m) for m in members)
        print(f"{name:<22} T={t:<4} APGR {mean:.4f} (min {values[:, 0].min():.3f})  "
              f"CPT(50%) {values[:, 1].mean():.1%}  CPT(80%) {values[:, 2].mean():.1%}  "
              f"ΔAPGR {diff.mean():+.4f} ± {diff.std():.4f} (wins {int(np.sum(diff > 0))}/"
              f"{len(diff)})")


if __name__ == "__main__":
    main()
