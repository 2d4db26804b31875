"""How the learned router's APGR grows with its training rows (issue #5): a learning curve.

    OMP_NUM_THREADS=1 DEBUG=1 .venv/bin/python bench/routing_learning_curve.py \
        [OUTCOMES.jsonl] [--folds 2,4,5,10,20] [--repeats 3] [--seed 0] [--jobs 2]

`eval_router --folds 5` trains each fold on 80% of the file, but the gateway (and `eval_router
--train FILE --test OTHER`) learns from every example it has. This runs repeated K-fold
cross-validation for several K with the production model (`evaluation.learned_predictions`, the
configured layers, temperature and per-format members, the same embeddings `eval_router`
caches), so the training size runs from half the file to 95% of it, and prints per K:

* the mean APGR / CPT(50%) / CPT(80%) over every split (what `eval_router --folds K --repeats R`
  prints) with the standard error of the APGR mean;
* the pooled out-of-fold APGR: each repeat's K folds' predictions scored as one curve over the
  whole file (no small-test-fold noise in the normalisation by the accuracy gap);

then a least-squares line of APGR on ln(training rows), extrapolated to a model trained on the
whole file (the operating point of a deployment that imported it). Every fit sees its training
rows only. Numbers are printed, not asserted.
"""

import argparse
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.common import offline_django_env  # noqa: E402  (needs ROOT on sys.path)

offline_django_env()

# Filled before the worker processes fork, so they share it instead of pickling it per task.
_DATA: dict = {}


def _load(path: str) -> None:
    import django

    django.setup()
    import numpy as np
    from django.conf import settings

    from bench.common import outcome_embeddings
    from routing.evaluation import load_outcomes

    rows = load_outcomes(path)
    vectors, layers = outcome_embeddings(rows)
    _DATA.update(rows=rows, vectors=vectors, layers=layers, wanted=tuple(layers),
                 temperature=settings.ROUTING_LEARNED_TEMPERATURE,
                 k=settings.ROUTING_LEARNED_K, formats=settings.ROUTING_LEARNED_FORMATS,
                 min_format_examples=settings.ROUTING_LEARNED_MIN_EXAMPLES,
                 weak=np.array([o.weak_correct for o in rows], dtype=float),
                 strong=np.array([o.strong_correct for o in rows], dtype=float))


def _split(task: tuple[int, int, int]):
    """Fit on one fold's training rows; return (folds, seed, test rows, P(strong) - P(weak))."""
    from routing.evaluation import kfold_indices, learned_predictions

    folds, seed, fold = task
    train, test = kfold_indices(len(_DATA["rows"]), folds, seed)[fold]
    rows, layers = _DATA["rows"], _DATA["layers"]
    p_weak, p_strong = learned_predictions(
        _DATA["vectors"][train], [rows[i] for i in train], _DATA["vectors"][test],
        [rows[i] for i in test], k=_DATA["k"],
        train_layers={x: v[train] for x, v in layers.items()},
        test_layers={x: v[test] for x, v in layers.items()},
        layers=_DATA["wanted"], temperature=_DATA["temperature"], formats=_DATA["formats"],
        min_format_examples=_DATA["min_format_examples"])
    return folds, seed, test, p_strong - p_weak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", nargs="?",
                        default=str(ROOT.parent / "shared/data/router_outcomes_dev.jsonl"))
    parser.add_argument("--folds", default="2,4,5,10,20",
                        help="Comma-separated fold counts K (training share 1 - 1/K).")
    parser.add_argument("--repeats", type=int, default=3, help="Fold seeds per K.")
    parser.add_argument("--seed", type=int, default=0, help="First fold seed.")
    parser.add_argument("--jobs", type=int, default=2, help="Worker processes.")
    args = parser.parse_args()
    folds_list = [int(x) for x in args.folds.split(",")]
    if min(folds_list) < 2:
        parser.error("--folds: every K must be at least 2")

    _load(args.file)
    import numpy as np

    from routing.evaluation import curve

    weak, strong, n = _DATA["weak"], _DATA["strong"], len(_DATA["rows"])
    seeds = range(args.seed, args.seed + args.repeats)
    tasks = [(k, s, f) for k in folds_list for s in seeds for f in range(k)]
    splits: dict[int, list] = {k: [] for k in folds_list}
    pooled: dict[tuple[int, int], np.ndarray] = {
        (k, s): np.zeros(n) for k in folds_list for s in seeds}
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        for k, s, test, score in pool.map(_split, tasks):
            c = curve(score, weak[test], strong[test])
            splits[k].append((c.apgr, c.cpt50, c.cpt80))
            pooled[k, s][test] = score

    print(f"{n} prompts; layers {list(_DATA['wanted']) or 'none'}, T = {_DATA['temperature']}, "
          f"k = {_DATA['k']}; fold seeds {args.seed}..{args.seed + args.repeats - 1}")
    print(f"{'K':>3} {'train rows':>10} {'splits':>6} {'APGR':>7} {'± SE':>6} {'CPT(50%)':>9} "
          f"{'CPT(80%)':>9} {'pooled APGR':>12} {'pooled CPT(80%)':>16}")
    sizes, means, pooled_means = [], [], []
    for k in folds_list:
        values = np.array(splits[k])
        curves = [curve(pooled[k, s], weak, strong) for s in seeds]
        se = values[:, 0].std(ddof=1) / np.sqrt(len(values)) if len(values) > 1 else 0.0
        train_rows = n - n / k
        sizes.append(train_rows)
        means.append(values[:, 0].mean())
        pooled_means.append(np.mean([c.apgr for c in curves]))
        print(f"{k:>3} {train_rows:>10.0f} {len(values):>6} {values[:, 0].mean():>7.4f} "
              f"{se:>6.4f} {values[:, 1].mean():>9.1%} {values[:, 2].mean():>9.1%} "
              f"{pooled_means[-1]:>12.4f} {np.mean([c.cpt80 for c in curves]):>16.1%}")
    if len(folds_list) >= 2:
        x = np.log(np.array(sizes))
        for name, y in (("per-split", means), ("pooled", pooled_means)):
            slope, intercept = np.polyfit(x, np.array(y), 1)
            print(f"{name} APGR ≈ {intercept:.4f} + {slope:.4f} · ln(train rows): "
                  f"{slope * np.log(2):+.4f} per doubling; at {n} rows (the whole file) "
                  f"{intercept + slope * np.log(n):.4f}")


if __name__ == "__main__":
    main()
