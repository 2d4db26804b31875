"""Fit the decision's soft penalties (semcache.decision.WEIGHTS) on labelled question pairs.

Protocol as `manage.py eval_cache`: every text_a stored, every text_b queried. For each query's
nearest stored prompts (cosine >= 0.75, hard guards passing) we compute the lexical features and
whether the candidate is a correct answer, fit a logistic regression p(correct | cosine,
features), and express the feature coefficients on the cosine scale (penalty_i = -coef_i /
coef_cosine, clipped at 0). Folds split by connected component check that the fit generalizes.
Prints the weights to paste into semcache/decision.py and a threshold sweep.

  python bench/semcache_fit_decision.py ../shared/data/qqp_pairs_dev.jsonl
Embeddings are cached in bench/.cache (git-ignored). Needs scikit-learn (dev only).
"""

import argparse
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[0] = str(ROOT)  # not bench/: its modules (profile.py) would shadow the stdlib
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "llmops.settings.test")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pairs", type=Path)
    parser.add_argument("--min-cosine", type=float, default=0.75)
    parser.add_argument("--target-precision", type=float, default=0.95)
    args = parser.parse_args()
    import django

    django.setup()
    from sklearn.linear_model import LogisticRegression

    from semcache.decision import decide
    from semcache.embedder import get_embedder, model_path
    from semcache.evaluation import _Components, cached_embed, load_pairs
    from semcache.guards import compare
    from semcache.index import Candidate
    from semcache.namespaces import normalize_text

    pairs = load_pairs(args.pairs)
    comp = _Components()
    for p in pairs:
        if p.label:
            comp.union(p.text_a, p.text_b)
    stored = list(dict.fromkeys(p.text_a for p in pairs))
    queries = [p.text_b for p in pairs]
    vectors = cached_embed(lambda t: get_embedder().embed_sync(t), stored + queries,
                           ROOT / "bench" / ".cache", tag=str(model_path()))
    sv, qv = vectors[: len(stored)], vectors[len(stored):]
    stored_set = {normalize_text(t): t for t in stored}

    # Top-4 candidates per query, exact search.
    top_i = np.zeros((len(queries), 4), dtype=np.int64)
    top_s = np.zeros((len(queries), 4), dtype=np.float32)
    for start in range(0, len(queries), 2048):
        sims = qv[start:start + 2048] @ sv.T
        part = np.argpartition(-sims, 4, axis=1)[:, :4]
        ps = np.take_along_axis(sims, part, 1)
        order = np.argsort(-ps, 1)
        top_i[start:start + 2048] = np.take_along_axis(part, order, 1)
        top_s[start:start + 2048] = np.take_along_axis(ps, order, 1)

    def correct(query, prompt):
        return normalize_text(query) == normalize_text(prompt) or comp.find(query) == \
            comp.find(prompt)

    X, y, groups = [], [], []
    for qi, query in enumerate(queries):
        if normalize_text(query) in stored_set:
            continue  # the exact path answers it
        for j in range(4):
            sim = float(top_s[qi, j])
            if sim < args.min_cosine:
                break
            prompt = stored[top_i[qi, j]]
            features = compare(query, prompt)
            if features.refused:
                continue
            X.append([sim, *features.vector()])
            y.append(int(correct(query, prompt)))
            groups.append(hash(comp.find(query)) % 2)
    X, y, groups = np.asarray(X), np.asarray(y), np.asarray(groups)
    print(f"{len(y)} candidate pairs, {y.mean():.3f} correct")

    def fit(mask):
        model = LogisticRegression(C=10.0, max_iter=2000)
        model.fit(X[mask], y[mask])
        coef = model.coef_[0]
        return tuple(round(max(0.0, -c / coef[0]), 4) for c in coef[1:])

    weights = fit(np.ones(len(y), dtype=bool))
    print("WEIGHTS =", weights)
    folds = [fit(groups == g) for g in (0, 1)]
    print("fold weights:", folds)

    def sweep(w, select=None):
        rows = []
        for t in np.arange(0.80, 0.99, 0.01):
            hits = correct_hits = dup_hits = 0
            dups = 0
            for qi, (pair, query) in enumerate(zip(pairs, queries, strict=True)):
                if select is not None and not select(pair):
                    continue
                dups += pair.label
                if normalize_text(query) in stored_set:
                    ok = True
                    hits += 1
                    correct_hits += ok
                    dup_hits += ok and pair.label
                    continue
                cands = [Candidate(str(top_i[qi, j]), float(top_s[qi, j]),
                                   stored[top_i[qi, j]]) for j in range(4)]
                verdict = decide(query, cands, threshold=float(t), weights=w)
                if verdict is None:
                    continue
                ok = correct(query, verdict.candidate.prompt)
                hits += 1
                correct_hits += ok
                dup_hits += ok and pair.label
            n = sum(1 for p in pairs if select is None or select(p))
            rows.append((round(float(t), 2), dup_hits / max(dups, 1),
                         correct_hits / max(hits, 1), 1000 * (hits - correct_hits) / n))
        return rows

    print("threshold  hit_rate  precision  false/1k   (all data, fitted weights)")
    for t, hr, p, f in sweep(weights):
        mark = " <=" if p >= args.target_precision else ""
        print(f"  {t:.2f}     {hr:.3f}     {p:.3f}     {f:.1f}{mark}")
    for g in (0, 1):
        print(f"cross-check: weights fitted on fold {1 - g}, evaluated on fold {g}")
        for t, hr, p, f in sweep(folds[1 - g], select=lambda pair, g=g:
                                 hash(comp.find(pair.text_b)) % 2 == g):
            if 0.85 <= t <= 0.95:
                print(f"  {t:.2f}     {hr:.3f}     {p:.3f}     {f:.1f}")


if __name__ == "__main__":
    main()
