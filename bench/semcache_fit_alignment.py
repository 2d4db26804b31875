"""Fit the decision (semcache/decision_params.json) on labelled pairs, cross-validated by component.

Protocol as `manage.py eval_cache`: every text_a stored in one namespace, every text_b queried.
For each query's 4 nearest stored prompts (exact search) with cosine >= the gray-zone floor and no
hard guard refusing, we compute the lexical features (semcache/guards.py) and the token-alignment
features (semcache/alignment.py, MiniLM token vectors), and whether the candidate is a correct
answer (same duplicate component or identical text). Two models are fitted, both logistic
regressions whose terms are constrained to be penalties, expressed on the cosine scale:

  adjusted = cosine - sum_i w_i * penalty_i      (penalty_i = 0 for an identical pair)

"full" uses lexical + alignment features (the gateway, with a token embedder); "lexical" uses the
lexical features only (the fallback when no token vectors are available). The decision accepts the
candidate (of the 4) with the highest adjusted similarity if it reaches the threshold.

Honesty: 5 folds split by connected component of the query. For each fold the models are fitted
on pairs whose query and candidate both belong to the other folds, the threshold is chosen on the
other folds (highest hit rate with precision >= --target), and the fold's queries are scored
against the full store (every text_a: as many distractors as eval_cache). Printed: the pooled
held-out numbers, per-fold numbers, and the full-data sweep of the model that ships.

  python bench/semcache_fit_alignment.py ../shared/data/qqp_pairs_dev.jsonl [--write]
Token features and embeddings are cached in bench/.cache (git-ignored). Needs scikit-learn/scipy.
"""

import argparse
import hashlib
import json
import os
import sys
import time
import zlib
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[0] = str(ROOT)  # not bench/: its modules (profile.py) would shadow the stdlib
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "llmops.settings.test")

TOP_K = 4
FOLDS = 5


def protocol_texts(pairs, cache_dir: Path):
    """Return (stored texts, query texts, their embeddings) of the eval protocol: every distinct
    text_a stored, every text_b queried (embeddings cached as `eval_cache` caches them)."""
    from semcache.embedder import get_embedder, model_path, precision_tag
    from semcache.evaluation import cached_embed

    stored = list(dict.fromkeys(p.text_a for p in pairs))
    queries = [p.text_b for p in pairs]
    vectors = cached_embed(lambda t: get_embedder().embed_sync(t), stored + queries, cache_dir,
                           tag=precision_tag(str(model_path())))
    return stored, queries, vectors[: len(stored)], vectors[len(stored):]


def nearest(qv: np.ndarray, sv: np.ndarray, k: int = TOP_K) -> tuple[np.ndarray, np.ndarray]:
    """Return each query's k nearest stored vectors (exact search): indices and cosines, best
    first."""
    top_i = np.zeros((len(qv), k), dtype=np.int64)
    top_s = np.zeros((len(qv), k), dtype=np.float32)
    for start in range(0, len(qv), 2048):
        sims = qv[start:start + 2048] @ sv.T
        part = np.argpartition(-sims, k, axis=1)[:, :k]
        ps = np.take_along_axis(sims, part, 1)
        order = np.argsort(-ps, 1)
        top_i[start:start + 2048] = np.take_along_axis(part, order, 1)
        top_s[start:start + 2048] = np.take_along_axis(ps, order, 1)
    return top_i, top_s


def candidate_features(pairs_path, stored, queries, sv, qv, floor, cache_dir):
    """Return the candidate table: query index, rank, cosine, guard, lexical, alignment."""
    from semcache.alignment import align, token_weights
    from semcache.embedder import get_embedder
    from semcache.guards import compare
    from semcache.namespaces import normalize_text

    key = hashlib.sha256(
        f"{pairs_path.stat().st_size}:{pairs_path.stat().st_mtime_ns}:{floor}:{TOP_K}:"
        f"{hashlib.sha256((ROOT / 'semcache' / 'alignment.py').read_bytes()).hexdigest()}:"
        f"{hashlib.sha256((ROOT / 'semcache' / 'guards.py').read_bytes()).hexdigest()}".encode()
    ).hexdigest()[:20]
    path = cache_dir / f"align-features-{key}.npz"
    if path.exists():
        data = np.load(path)
        return {k: data[k] for k in data.files}

    top_i, top_s = nearest(qv, sv)

    stored_norm = {normalize_text(t) for t in stored}
    rows = []  # (query index, rank, stored index, cosine, refused)
    for qi, query in enumerate(queries):
        if normalize_text(query) in stored_norm:
            continue
        for j in range(TOP_K):
            if top_s[qi, j] < floor:
                break
            rows.append((qi, j, int(top_i[qi, j]), float(top_s[qi, j])))
    print(f"{len(rows)} gray-zone candidates; computing token features", flush=True)

    embedder = get_embedder()  # embed_tokens_sync: the gateway's token vectors (ONNX or torch)
    texts = list(dict.fromkeys([queries[r[0]] for r in rows] + [stored[r[2]] for r in rows]))
    tokens, weights = {}, {}
    started = time.perf_counter()
    for start in range(0, len(texts), 2048):
        part = texts[start:start + 2048]
        for text, vectors in zip(part, embedder.embed_tokens_sync(part), strict=True):
            tokens[text] = vectors.astype(np.float16)  # ~0.5 GB for the whole file
            weights[text] = token_weights(text)
        done = start + len(part)
        print(f"  {done}/{len(texts)} texts  {done / (time.perf_counter() - started):.0f}/s",
              flush=True)
    lexical = np.zeros((len(rows), 6), dtype=np.float32)
    refused = np.zeros(len(rows), dtype=bool)
    alignment = np.zeros((len(rows), 6), dtype=np.float32)
    for n, (qi, _, si, _) in enumerate(rows):
        q, s = queries[qi], stored[si]
        features = compare(q, s)
        refused[n] = features.refused is not None
        lexical[n] = features.vector()
        alignment[n] = align(tokens[q].astype(np.float32), weights[q],
                             tokens[s].astype(np.float32), weights[s]).vector()
    table = {
        "query": np.array([r[0] for r in rows]), "rank": np.array([r[1] for r in rows]),
        "stored": np.array([r[2] for r in rows]), "cosine": np.array([r[3] for r in rows]),
        "refused": refused, "lexical": lexical, "alignment": alignment,
    }
    np.savez(path, **table)
    return table


def penalties(table, model: str) -> np.ndarray:
    """Return the penalty matrix (0 for an identical pair, larger = more different)."""
    from semcache.alignment import IDENTICAL

    lexical = table["lexical"]
    if model == "lexical":
        return lexical
    alignment = np.abs(table["alignment"] - np.asarray(IDENTICAL, dtype=np.float32))
    return np.hstack([lexical, alignment])


def fit_penalty_model(cosine, P, y, l2=1e-3):
    """Return (intercept, cosine coefficient, penalty weights >= 0 on the cosine scale)."""
    from scipy.optimize import minimize

    X = np.hstack([cosine[:, None], -P]).astype(np.float64)
    yy = y.astype(np.float64)

    def loss(theta):
        b0, coef = theta[0], theta[1:]
        z = b0 + X @ coef
        # log(1 + e^z) - y z, stable
        lz = np.logaddexp(0.0, z) - yy * z
        p = np.exp(-np.logaddexp(0.0, -z))  # sigmoid without overflow
        g = X.T @ (p - yy) / len(yy) + 2 * l2 * coef
        return lz.mean() + l2 * coef @ coef, np.concatenate([[np.mean(p - yy)], g])

    theta0 = np.zeros(X.shape[1] + 1)
    theta0[1] = 10.0
    bounds = [(None, None), (1e-3, None)] + [(0.0, None)] * P.shape[1]
    result = minimize(loss, theta0, jac=True, method="L-BFGS-B", bounds=bounds,
                      options={"maxiter": 5000})
    b0, bc, a = result.x[0], result.x[1], result.x[2:]
    return float(b0), float(bc), a / bc


def simulate(table, adjusted, correct_row, n_queries, exact_queries, labels, thresholds,
             query_mask=None):
    """Return [(t, hit_rate, precision, false/1k, hits)] of the top-4 re-ranking decision."""
    q = table["query"]
    ok_rows = ~table["refused"]
    if query_mask is None:
        query_mask = np.ones(n_queries, dtype=bool)
    # Best adjusted score per query among candidates no guard refuses.
    best = np.full(n_queries, -np.inf)
    best_ok = np.zeros(n_queries, dtype=bool)
    order = np.argsort(adjusted)  # ascending: the last write per query is the best
    for r in order:
        if ok_rows[r]:
            best[q[r]] = adjusted[r]
            best_ok[q[r]] = correct_row[r]
    m = query_mask
    dups = labels[m].sum()
    exact = exact_queries & m
    results = []
    for t in thresholds:
        hit = (best >= t) & m & ~exact_queries
        hits = hit.sum() + exact.sum()
        good = (hit & best_ok).sum() + exact.sum()
        dup_good = (hit & best_ok & (labels == 1)).sum() + (exact & (labels == 1)).sum()
        results.append((round(float(t), 3), dup_good / max(dups, 1), good / max(hits, 1),
                        1000 * (hits - good) / max(m.sum(), 1), int(hits)))
    return results


def pick(rows, target):
    """Return the row with the highest hit rate whose precision reaches `target`."""
    ok = [r for r in rows if r[2] >= target]
    return max(ok, key=lambda r: r[1]) if ok else max(rows, key=lambda r: r[2])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pairs", type=Path)
    parser.add_argument("--floor", type=float, default=0.80, help="Gray-zone floor (cosine).")
    parser.add_argument("--target", type=float, default=0.95, help="Precision target.")
    parser.add_argument("--write", action="store_true",
                        help="Write semcache/decision_params.json from the full-data fit.")
    args = parser.parse_args()
    import django

    django.setup()
    from semcache.evaluation import components_of, load_pairs
    from semcache.namespaces import normalize_text

    cache_dir = ROOT / "bench" / ".cache"
    pairs = load_pairs(args.pairs)
    comp = components_of(pairs)
    stored, queries, sv, qv = protocol_texts(pairs, cache_dir)
    table = candidate_features(args.pairs, stored, queries, sv, qv, args.floor, cache_dir)

    labels = np.array([p.label for p in pairs])
    stored_norm = {normalize_text(t) for t in stored}
    exact_queries = np.array([normalize_text(q) in stored_norm for q in queries])
    fold_of = lambda text: zlib.crc32(comp.find(text).encode()) % FOLDS  # noqa: E731
    query_fold = np.array([fold_of(q) for q in queries])
    stored_fold = np.array([fold_of(s) for s in stored])
    q, s = table["query"], table["stored"]
    correct = np.array([
        normalize_text(queries[a]) == normalize_text(stored[b])
        or comp.find(queries[a]) == comp.find(stored[b]) for a, b in zip(q, s, strict=True)
    ])
    cosine = table["cosine"].astype(np.float64)
    usable = ~table["refused"]
    thresholds = np.round(np.arange(args.floor, 0.995, 0.0025), 4)
    print(f"{len(q)} candidates ({usable.sum()} pass the hard guards), "
          f"{correct[usable].mean():.3f} correct; {len(queries)} queries, {labels.sum()} dups")

    plain = simulate(table, np.where(table["rank"] == 0, cosine, -np.inf), correct,
                     len(queries), exact_queries, labels, thresholds)
    print("plain cosine (top-1, guards on):",
          "  ".join(f"{t:.3f}:{hr:.3f}@{p:.3f}" for t, hr, p, _, _ in plain[::8]))

    shipped = {}
    for model in ("lexical", "full"):
        P = penalties(table, model).astype(np.float64)
        print(f"\n== model '{model}' ({P.shape[1]} penalties) ==")
        pooled = {"hits": 0, "good": 0, "dup_good": 0, "dups": 0, "queries": 0}
        per_fold = []
        for k in range(FOLDS):
            train_rows = usable & (query_fold[q] != k) & (stored_fold[s] != k)
            _, _, w = fit_penalty_model(cosine[train_rows], P[train_rows], correct[train_rows])
            adjusted = cosine - P @ w
            train_q = query_fold != k
            t_rows = simulate(table, adjusted, correct, len(queries), exact_queries, labels,
                              thresholds, query_mask=train_q)
            chosen = pick(t_rows, args.target)[0]
            test_q = query_fold == k
            (_, hr, prec, fh, hits), = simulate(table, adjusted, correct, len(queries),
                                                exact_queries, labels, [chosen], test_q)
            best = pick(simulate(table, adjusted, correct, len(queries), exact_queries, labels,
                                 thresholds, test_q), args.target)
            per_fold.append((k, chosen, hr, prec, fh, best))
            dups = int(labels[test_q].sum())
            pooled["hits"] += hits
            pooled["good"] += round(prec * hits)
            pooled["dup_good"] += round(hr * dups)
            pooled["dups"] += dups
            pooled["queries"] += int(test_q.sum())
        for k, chosen, hr, prec, fh, best in per_fold:
            print(f"  fold {k}: threshold {chosen:.4f} (chosen on the other folds) -> held-out "
                  f"hit rate {hr:.3f} precision {prec:.3f} false/1k {fh:.1f}; best on the fold "
                  f"at precision >= {args.target}: {best[1]:.3f} @ {best[2]:.3f} (t={best[0]})")
        print(f"  CROSS-VALIDATED (pooled held-out): hit rate "
              f"{pooled['dup_good'] / pooled['dups']:.3f} precision "
              f"{pooled['good'] / pooled['hits']:.3f} false/1k "
              f"{1000 * (pooled['hits'] - pooled['good']) / pooled['queries']:.1f}")

        b0, bc, w = fit_penalty_model(cosine[usable], P[usable], correct[usable])
        adjusted = cosine - P @ w
        rows = simulate(table, adjusted, correct, len(queries), exact_queries, labels, thresholds)
        chosen = pick(rows, args.target)
        print(f"  full-data fit: weights {np.round(w, 4).tolist()}")
        print(f"  full-data threshold {chosen[0]}: hit rate {chosen[1]:.3f} precision "
              f"{chosen[2]:.3f} false/1k {chosen[3]:.1f}")
        for t, hr, p, fh, _ in rows[::4]:
            print(f"    {t:.4f}  {hr:.3f}  {p:.3f}  {fh:.1f}")
        shipped[model] = {"weights": [round(float(x), 5) for x in w], "intercept": b0,
                          "cosine_coefficient": bc, "threshold": chosen[0]}
    if args.write:
        from semcache.alignment import NAMES

        params = {
            "fitted_by": "bench/semcache_fit_alignment.py",
            "data": args.pairs.name, "floor": args.floor, "top_k": TOP_K,
            "lexical_names": ["query_only", "stored_only", "one_minus_jaccard", "swapped",
                              "entity_only", "wh_differs"],
            "alignment_names": list(NAMES),
            **shipped,
        }
        out = ROOT / "semcache" / "decision_params.json"
        out.write_text(json.dumps(params, indent=2) + "\n")
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
