"""A pair judge for the gray zone, scored against the hand-read verdicts (not only the labels).

    HF_HUB_OFFLINE=1 nice -n 10 .venv/bin/python bench/semcache_pair_judge.py PAIRS.jsonl \
        [--verdicts semcache/data/judged_qqp_dev.jsonl] [--heldout FILE] [--json]
        [--unjudged /tmp/judge/new.jsonl]

Candidates that no hard guard refuses with a cosine in [low, threshold) (the gray zone) go to a
pair judge: a logistic regression over what the two texts differ in (content words on one side
only, and whether the embedder's own word-piece vectors find each of them a match on the other
side; a two-part query against a one-part candidate; another question word, time frame, length)
and the cosine. Above the threshold the decision is unchanged (cosine + hard guards).

Training rows are every gray-zone candidate of eval_cache's lookups (bench/semcache_judged_sample:
cached in bench/.cache), labelled by the hand-read verdict where there is one (weighted
--judged-weight) and by QQP's label elsewhere. Every row is scored out of fold (5 folds by
query), so no verdict or label scores the model it trained. Each operating point (low, p) is
measured as bench/semcache_guards_report.py measures decisions: label hit rate and precision over
the whole file, judged precision (whole-file estimate from the strata, 95% interval), the share
of lookups that reach the judge and the decision's time per lookup with the judge (features +
model, embedding and search excluded: they are the same with or without it).

--heldout scores hand-written pairs (text_a stored, text_b the query, `verdict` SAME/DIFFERENT)
with each pair a lone candidate, for the judge trained on all rows.
"""

import argparse
import json
import sys
import time
from collections import defaultdict
from functools import lru_cache
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.semcache_guards_report import load_judged, measure  # noqa: E402
from bench.semcache_judged_sample import ROOT, judged_arguments  # noqa: E402

THRESHOLD = 0.962      # the shipped decision's cosine threshold (CACHE_SIMILARITY_THRESHOLD)
GRAY_FLOOR = 0.85      # rows below this are never judged
LOWS = (0.90, 0.92, 0.93, 0.94, 0.95)
PROBABILITIES = (0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95)
MATCH = 0.4            # centred word-piece cosine above which a one-sided word has a match
_QUESTION_WORDS = ("what", "how", "why", "which", "who", "where", "when", "is", "are", "can",
                   "should", "do", "does")
_TIME = {"today", "now", "currently", "future", "past", "history", "year", "years", "month",
         "week", "next", "last", "ago", "modern", "ancient", "still", "yet", "recent", "recently",
         "tomorrow", "yesterday", "upcoming", "former", "old", "new", "latest"}
FEATURES = ("cosine", "q_only", "s_only", "q_unmatched", "s_unmatched", "jaccard",
            "log_length_ratio", "question_word", "two_part_q", "two_part_s", "time",
            "one_sided_entity_q", "one_sided_entity_s", "q_only_x_two_part")


@lru_cache(maxsize=1)
def _wordpieces():
    """Return (tokenizer, unit word-piece vectors) of the embedder's own input embeddings."""
    from safetensors.numpy import load_file
    from tokenizers import Tokenizer

    from semcache.embedder import model_path

    weights = load_file(str(model_path() / "model.safetensors"))
    matrix = next(v for k, v in weights.items() if k.endswith("word_embeddings.weight"))
    # Centred: every word-piece vector shares a large common direction.
    matrix = matrix - matrix.mean(0)
    matrix = matrix / np.linalg.norm(matrix, axis=1, keepdims=True)
    tokenizer = Tokenizer.from_file(str(model_path() / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.no_truncation()
    return tokenizer, matrix.astype(np.float32)


@lru_cache(maxsize=65536)
def _word_vector(word: str) -> np.ndarray:
    tokenizer, matrix = _wordpieces()
    ids = tokenizer.encode(word, add_special_tokens=False).ids or [100]
    v = matrix[ids].mean(0)
    return v / (np.linalg.norm(v) + 1e-9)


def _unmatched(only: set, other_words) -> int:
    """Return how many of `only` have no word-piece match among `other_words`."""
    if not only:
        return 0
    others = [w for w in other_words if len(w) > 1]
    if not others:
        return len(only)
    m = np.stack([_word_vector(w) for w in others])
    return sum(float((m @ _word_vector(w)).max()) < MATCH for w in only)


def _two_part(f) -> bool:
    """Return whether a text asks two things: "X and Y" over 3+ content words, or two question
    words."""
    questions = sum(f.tokens.count(w) for w in ("how", "what", "why"))
    return ("and" in f.tokens[1:-1] and len(f.content) >= 3) or questions >= 2


def pair_features(query: str, stored: str, cosine: float) -> np.ndarray:
    """Return the judge's features of a (query, stored prompt) pair."""
    from semcache.guards import text_features

    q, s = text_features(query), text_features(stored)
    q_only, s_only = q.content - s.content, s.content - q.content
    union = q.content | s.content
    qw = next((w for w in q.tokens if w in _QUESTION_WORDS), "")
    sw = next((w for w in s.tokens if w in _QUESTION_WORDS), "")
    two_q, two_s = _two_part(q), _two_part(s)
    return np.array([
        cosine, len(q_only), len(s_only),
        _unmatched({w for w in q.words if w in q_only or w.rstrip("s") in q_only} or q_only,
                   s.words),
        _unmatched({w for w in s.words if w in s_only or w.rstrip("s") in s_only} or s_only,
                   q.words),
        len(q.content & s.content) / len(union) if union else 1.0,
        abs(np.log((len(q.tokens) + 1) / (len(s.tokens) + 1))),
        float(qw != sw), float(two_q and not two_s), float(two_s and not two_q),
        float((q.words & _TIME) != (s.words & _TIME)),
        float(bool(q.entities - s.content)), float(bool(s.entities - q.content)),
        len(q_only) * float(two_q and not two_s),
    ], dtype=np.float64)


ALIGN_FEATURES = ("q_align_min", "q_align_mean", "q_align_weak", "s_align_min", "s_align_mean",
                  "s_align_weak")


@lru_cache(maxsize=1)
def _backend():
    from semcache.embedder import model_path
    from semcache.onnx_backend import OnnxBackend

    return OnnxBackend(model_path(), threads=1)


def _token_states(texts: list[str]) -> list[np.ndarray]:
    """Return each text's unit last-layer token vectors ([CLS] and [SEP] left out)."""
    out: list = [None] * len(texts)
    for positions, (hidden,), mask in _backend()._chunks(texts):
        for row, i in enumerate(positions):
            h = hidden[row, 1:int(mask[row].sum()) - 1]
            out[i] = h / np.linalg.norm(h, axis=1, keepdims=True)
    return out


def align_features(texts: list[tuple[str, str]]) -> np.ndarray:
    """Return the token alignment of (query, stored) pairs (one forward pass of every distinct
    text): per side, each token's best cosine to the other side's tokens, its min, mean and how
    many are below 0.6 (a word the other text has nothing like)."""
    names = list(dict.fromkeys(t for pair in texts for t in pair))
    states = dict(zip(names, _token_states(names), strict=True))
    out = np.zeros((len(texts), len(ALIGN_FEATURES)))
    for k, (query, stored) in enumerate(texts):
        m = states[query] @ states[stored].T
        q, s = m.max(1), m.max(0)
        out[k] = [q.min(), q.mean(), (q < 0.6).sum(), s.min(), s.mean(), (s < 0.6).sum()]
    return out


def with_alignment(X: np.ndarray, texts: list[tuple[str, str]], chunk: int = 256) -> np.ndarray:
    return np.hstack([X, np.vstack([align_features(texts[i:i + chunk])
                                    for i in range(0, len(texts), chunk)])])


def gray_rows(pairs, records, verdicts):
    """Return (X, y, judged verdict or '', (query line, rank), (query, stored)) of every
    gray-zone candidate that no hard guard refuses."""
    from semcache.decision import _identical
    from semcache.guards import compare, text_features
    from semcache.namespaces import normalize_text

    judged = {(v.query_line, v.candidate_line): v.verdict for v in verdicts}
    X, y, verdict, keys, texts = [], [], [], [], []
    for r in records:
        if r["exact"] or not r["candidates"]:
            continue
        query = normalize_text(pairs[r["line"] - 1].text_b)
        if text_features(query).deictic:
            continue
        for rank, c in enumerate(r["candidates"]):
            if not GRAY_FLOOR <= c.similarity < THRESHOLD or _identical(query, c.prompt):
                continue
            if compare(query, c.prompt).refused:
                continue
            X.append(pair_features(query, c.prompt, c.similarity))
            v = judged.get((r["line"], r["lines"][rank]), "")
            verdict.append(v)
            y.append(v == "SAME" if v in ("SAME", "DIFFERENT") else bool(r["label_ok"][rank]))
            keys.append((r["line"], rank))
            texts.append((query, c.prompt))
    return np.array(X), np.array(y), np.array(verdict), keys, texts


def fit(X, y, weights):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000))
    model.fit(X, y, logisticregression__sample_weight=weights)
    return model


def out_of_fold(X, y, verdict, keys, judged_weight: float, folds: int = 5,
                judged_only: bool = False) -> np.ndarray:
    """Return each row's probability from a model that never saw its query."""
    fold = np.array([(line * 2654435761) % 2**32 % folds for line, _ in keys])
    usable = np.isin(verdict, ["SAME", "DIFFERENT"]) if judged_only else verdict != "UNSURE"
    weights = np.where(verdict != "", judged_weight, 1.0)
    p = np.zeros(len(y))
    for k in range(folds):
        train = (fold != k) & usable
        p[fold == k] = fit(X[train], y[train], weights[train]).predict_proba(X[fold == k])[:, 1]
    return p


def decider(probability: dict, low: float, p_min: float):
    """Return an outcome function: cosine + guards at THRESHOLD, the judge in [low, THRESHOLD)."""
    from semcache.decision import _identical
    from semcache.guards import compare, text_features
    from semcache.namespaces import normalize_text

    def outcome(pairs, r):
        if r["exact"]:
            return -1, r["hit"]
        query = normalize_text(pairs[r["line"] - 1].text_b)
        if text_features(query).deictic:
            return None, None
        best, best_score = None, -1.0
        for rank, c in enumerate(r["candidates"]):
            if _identical(query, c.prompt):
                score = max(c.similarity, 1.0)
            elif c.similarity >= THRESHOLD and not compare(query, c.prompt).refused:
                score = c.similarity
            elif (low <= c.similarity < THRESHOLD
                  and probability.get((r["line"], rank), 0.0) >= p_min):
                score = c.similarity
            else:
                continue
            if score > best_score:
                best, best_score = rank, score
        return (None, None) if best is None else (best, r["lines"][best])
    return outcome


def reach_share(pairs, records, low: float) -> float:
    """Return the share of lookups (all queries) that would run the judge: no hit at the
    threshold, some unrefused candidate in [low, threshold)."""
    from semcache.decision import decide
    from semcache.guards import compare
    from semcache.namespaces import normalize_text

    reached = 0
    for r in records:
        if r["exact"] or not r["candidates"]:
            continue
        query = normalize_text(pairs[r["line"] - 1].text_b)
        if decide(query, r["candidates"], threshold=THRESHOLD) is not None:
            continue
        reached += any(low <= c.similarity < THRESHOLD and not compare(query, c.prompt).refused
                       for c in r["candidates"])
    return reached / len(records)


def time_lookups(pairs, records, model, low: float, align: bool, n: int = 3000) -> tuple:
    """Return (p50, p99, max wall-clock ms, p99 thread-CPU ms, n) of decide + judge per lookup
    that reaches the judge, features computed cold (caches cleared first)."""
    from semcache.decision import decide
    from semcache.guards import compare, text_features
    from semcache.namespaces import normalize_text

    text_features.cache_clear()
    _word_vector.cache_clear()
    times, cpu = [], []
    for r in records:
        if r["exact"] or not r["candidates"] or len(times) >= n:
            continue
        query = normalize_text(pairs[r["line"] - 1].text_b)
        started, started_cpu = time.perf_counter(), time.thread_time()
        if decide(query, r["candidates"], threshold=THRESHOLD) is None:
            gray = [c for c in r["candidates"] if low <= c.similarity < THRESHOLD
                    and not compare(query, c.prompt).refused]
            if not gray:
                continue
            X = np.stack([pair_features(query, c.prompt, c.similarity) for c in gray])
            if align:
                X = np.hstack([X, align_features([(query, c.prompt) for c in gray])])
            model.predict_proba(X)
            times.append(time.perf_counter() - started)
            cpu.append(time.thread_time() - started_cpu)
    t, c = np.array(times) * 1000, np.array(cpu) * 1000
    return (float(np.percentile(t, 50)), float(np.percentile(t, 99)), float(t.max()),
            float(np.percentile(c, 99)), len(t))


def heldout(path: Path, model, low: float, p_min: float, align: bool) -> dict:
    """Score hand-written pairs, each a lone candidate: shipped decision vs with the judge."""
    from semcache.decision import decide
    from semcache.embedder import get_embedder
    from semcache.index import Candidate
    from semcache.namespaces import normalize_text

    rows = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
    vectors = get_embedder().embed_sync([t for r in rows for t in (r["text_a"], r["text_b"])])
    counts = defaultdict(lambda: defaultdict(int))
    for i, r in enumerate(rows):
        cosine = float(vectors[2 * i] @ vectors[2 * i + 1])
        query, stored = normalize_text(r["text_b"]), normalize_text(r["text_a"])
        candidate = Candidate("x", cosine, stored)
        shipped = decide(query, [candidate], threshold=THRESHOLD) is not None
        judged = shipped
        if not shipped and low <= cosine < THRESHOLD and decide(
                query, [candidate], threshold=low) is not None:
            X = pair_features(query, stored, cosine)[None]
            if align:
                X = np.hstack([X, align_features([(query, stored)])])
            judged = model.predict_proba(X)[0, 1] >= p_min
        for name, hit in (("shipped", shipped), ("judge", judged)):
            counts[name][f"{r['verdict']}_{'hit' if hit else 'miss'}"] += 1
    return {k: dict(v) for k, v in counts.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    judged_arguments(parser)
    parser.add_argument("--judged-weight", type=float, default=100.0)
    parser.add_argument("--judged-only", action="store_true",
                        help="Train on the verdicts alone (no QQP labels).")
    parser.add_argument("--align", action="store_true",
                        help="Add the token alignment (a forward pass of each gray candidate).")
    parser.add_argument("--heldout", type=Path)
    parser.add_argument("--unjudged", type=Path,
                        help="Write the strata's hits without a verdict here (outside the repo).")
    args = parser.parse_args()
    pairs, records, verdicts, strata = load_judged(args)
    X, y, verdict, keys, texts = gray_rows(pairs, records, verdicts)
    names = FEATURES
    if args.align:
        X, names = with_alignment(X, texts), FEATURES + ALIGN_FEATURES
    p = out_of_fold(X, y, verdict, keys, args.judged_weight, judged_only=args.judged_only)
    probability = dict(zip(keys, p, strict=True))
    judged = np.isin(verdict, ["SAME", "DIFFERENT"])
    print(f"gray rows {len(y)} ({judged.sum()} judged: {(verdict == 'SAME').sum()} SAME, "
          f"{(verdict == 'DIFFERENT').sum()} DIFFERENT, {(verdict == 'UNSURE').sum()} UNSURE)")
    from sklearn.metrics import roc_auc_score
    print(f"out-of-fold AUC on the verdicts: judge {roc_auc_score(y[judged], p[judged]):.3f}, "
          f"cosine {roc_auc_score(y[judged], X[judged, 0]):.3f}")
    results = {}
    base = measure(pairs, records, verdicts, strata, THRESHOLD, True)
    results["0.962 cosine + guards"] = base
    for low in LOWS:
        results[f"{low:.3f} cosine + guards"] = measure(pairs, records, verdicts, strata, low,
                                                        True)
        for p_min in PROBABILITIES:
            results[f"judge [{low:.2f}, 0.962) p>={p_min}"] = measure(
                pairs, records, verdicts, strata, THRESHOLD, True,
                outcome=decider(probability, low, p_min))
    full = fit(X[verdict != "UNSURE"], y[verdict != "UNSURE"],
               np.where(verdict[verdict != "UNSURE"] != "", args.judged_weight, 1.0))
    coefficients = dict(zip(names, full[-1].coef_[0].round(3).tolist(), strict=True))
    print("coefficients (standardized):", coefficients)
    if args.unjudged:
        from bench.semcache_guards_report import write_unjudged
        if ROOT in args.unjudged.resolve().parents:
            parser.error("--unjudged must be outside the repository (QQP text).")
        count = write_unjudged(pairs, records, verdicts, strata, list(results.items()),
                               args.unjudged)
        print(f"{count} unjudged hits -> {args.unjudged}", file=sys.stderr)
    print("decision: label hit rate, label precision | hits/1k, judged precision [UNSURE wrong, "
          "right; 95% low, high], semantic recall, unjudged hits/1k")
    for label, r in results.items():
        jp = r["judged_precision"]
        print(f"  {label:<34} {r['label_hit_rate']:.3f} {r['label_precision']:.3f} | "
              f"{r['hits_per_1k']:6.1f}  {jp[0]:.3f}-{jp[1]:.3f} [{jp[2]:.3f}, {jp[3]:.3f}]  "
              f"{r['semantic_recall']:.3f}  {r['unjudged_hits_per_1k']:5.1f}")
    for low in LOWS:
        share = reach_share(pairs, records, low)
        p50, p99, worst, cpu99, n = time_lookups(pairs, records, full, low, args.align)
        print(f"  judge from {low:.2f}: reaches {share:.3%} of lookups; decide + judge on {n} "
              f"such lookups p50 {p50:.3f} ms, p99 {p99:.3f} ms (thread CPU p99 {cpu99:.3f} ms), "
              f"max {worst:.3f} ms")
    if args.heldout:
        for low in LOWS:
            for p_min in PROBABILITIES:
                print(f"  held-out [{low:.2f}, p>={p_min}]:",
                      json.dumps(heldout(args.heldout, full, low, p_min, args.align)))
    if args.json:
        for r in results.values():
            r.pop("outcomes", None)
        print(json.dumps({"coefficients": coefficients, "results": results}, indent=2))


if __name__ == "__main__":
    main()
