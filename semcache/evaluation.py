"""Evaluate the cache decision on labelled question pairs (`manage.py eval_cache`).

Protocol: every `text_a` is stored (with a stand-in answer) in one namespace through the real
store, index and decision code; then every `text_b` is looked up: the exact path first, then the
index's nearest neighbours through the decision. A hit is correct when the returned entry and the
query are duplicates (same connected component of label-1 edges) or the same text. Each query's
`Lookup` (the line that served it, the candidates) can be watched, and scored against hand-read
verdicts (semcache.judged).
"""

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from semcache.decision import decide
from semcache.index import Candidate
from semcache.judged import JudgedPair, Outcome, applicable, judged_report
from semcache.namespaces import build_scope, normalize_text
from semcache.services import CANDIDATES, CacheEngine
from semcache.store import MemoryStore

PLAIN_THRESHOLDS = tuple(round(0.80 + 0.01 * i, 2) for i in range(18))  # 0.80 .. 0.97


@dataclass(frozen=True)
class Pair:
    text_a: str
    text_b: str
    label: int


def load_pairs(path: Path, *, limit: int | None = None) -> list[Pair]:
    """Return the pairs of a JSONL file (`text_a`, `text_b`, `label`; other keys ignored)."""
    pairs = []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if not line.strip():
                continue
            row = json.loads(line)
            pairs.append(Pair(str(row["text_a"]), str(row["text_b"]), int(row["label"])))
            if limit and len(pairs) >= limit:
                break
    return pairs


def cached_embed(embed: Callable[[list[str]], np.ndarray], texts: list[str],
                 cache_dir: Path | None, *, tag: str = "") -> np.ndarray:
    """Return embeddings of `texts`, from `cache_dir` when computed before (never committed)."""
    if cache_dir is None:
        return embed(texts)
    digest = hashlib.sha256(("\x1e".join(texts) + "\x1f" + tag).encode()).hexdigest()[:24]
    path = Path(cache_dir) / f"eval-embeddings-{digest}.npy"
    if path.exists():
        return np.load(path)
    vectors = embed(texts)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, vectors)
    return vectors


class _Components:
    def __init__(self):
        self.parent: dict[str, str] = {}

    def find(self, x: str) -> str:
        self.parent.setdefault(x, x)
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def union(self, a: str, b: str) -> None:
        self.parent[self.find(a)] = self.find(b)

    def correct(self, prompt: str, query: str) -> bool:
        """Return whether serving `prompt`'s entry to `query` is a correct hit by the labels:
        the same text, or duplicates."""
        return normalize_text(prompt) == normalize_text(query) or \
            self.find(prompt) == self.find(query)


def components_of(pairs: list[Pair]) -> _Components:
    """Return the connected components of the pairs' label-1 edges (duplicates of duplicates
    are duplicates): `components_of(pairs).find(a) == ....find(b)` when a and b are duplicates."""
    components = _Components()
    for pair in pairs:
        if pair.label == 1:
            components.union(pair.text_a, pair.text_b)
    return components


@dataclass(frozen=True)
class Lookup:
    """One query of a run: what the decision served it and what the index offered."""

    line: int                   # the query's pair, 1-based as load_pairs numbers it
    hit_line: int | None        # the first pair whose text_a is the entry served, or None
    exact: bool                 # served by the exact path (then no index search)
    label_correct: bool         # a hit the labels call correct (False on a miss)
    candidates: list[Candidate]  # the index's nearest entries, best first
    candidate_lines: list[int]  # the first pair whose text_a is each candidate

    @property
    def outcome(self) -> Outcome:
        """Return the hit or miss as semcache.judged scores it."""
        return Outcome(query_line=self.line, hit_line=self.hit_line)


@dataclass
class _Tally:
    hits: int = 0
    correct: int = 0
    correct_on_duplicates: int = 0

    def add(self, hit: bool, correct: bool, duplicate: bool) -> None:
        if hit:
            self.hits += 1
            self.correct += correct
            self.correct_on_duplicates += correct and duplicate

    def report(self, queries: int, duplicates: int) -> dict:
        return {
            "hit_rate": round(self.correct_on_duplicates / duplicates, 4) if duplicates else 0.0,
            "precision": round(self.correct / self.hits, 4) if self.hits else 1.0,
            "false_hits_per_1k": round(1000 * (self.hits - self.correct) / queries, 2)
            if queries else 0.0,
            "hits": self.hits,
        }


def _ms(seconds: float) -> float:
    return round(1000 * float(seconds), 3)


def evaluate(pairs: list[Pair], *, embed: Callable[[list[str]], np.ndarray], threshold: float,
             thresholds=PLAIN_THRESHOLDS, progress: Callable | None = None,
             options: dict | None = None,
             on_lookup: Callable[[Lookup], None] | None = None) -> dict:
    """Run the protocol; return the decision's numbers (semcache.decision.decide at
    `threshold`) plus those of plain cosine thresholds. `on_lookup` receives each query's
    `Lookup` in order."""
    started = time.perf_counter()
    components = components_of(pairs)
    engine = CacheEngine(MemoryStore(max_events=1),
                         index_options=options)
    team_id, model = 0, "eval"

    def scope_of(text):
        return build_scope(team_id=team_id, messages=[{"role": "user", "content": text}],
                           requested_model=model, answer_params={})

    first_line: dict[str, int] = {}
    for line, pair in enumerate(pairs, 1):
        first_line.setdefault(pair.text_a, line)
    stored = list(first_line)
    queries = [p.text_b for p in pairs]
    vectors = embed(stored + queries)
    stored_vectors, query_vectors = vectors[: len(stored)], vectors[len(stored):]
    answer = {"role": "assistant", "content": "stand-in answer"}
    line_of: dict[str, int] = {}  # entry id -> its question's first pair
    for text, vector in zip(stored, stored_vectors, strict=True):
        entry = engine.put(scope_of(text), vector=vector, message=answer, finish_reason="stop",
                           model=model, usage={}, cost=0, ttl_seconds=24 * 3600)
        line_of[entry.id] = first_line[text]
    namespace = scope_of(stored[0]).namespace if stored else ""
    index = engine.registry.index_for(namespace)
    stored_at = time.perf_counter()

    configured, plain = _Tally(), {t: _Tally() for t in thresholds}
    duplicates = sum(p.label for p in pairs)
    decision_times: list[float] = []
    gray_zone_times: list[float] = []
    now = time.time()
    for i, (pair, vector) in enumerate(zip(pairs, query_vectors, strict=True)):
        scope = scope_of(pair.text_b)
        exact = engine.find_exact(scope)
        duplicate = pair.label == 1
        t0 = time.perf_counter()
        candidates = [] if exact else index.search(vector, CANDIDATES, now=now)
        if exact:
            ok = components.correct(exact.entry.prompt, pair.text_b)
            hit_line = line_of[exact.entry.id]
            configured.add(True, ok, duplicate)
            for tally in plain.values():
                tally.add(True, ok, duplicate)
        else:
            gray = any(c.similarity >= threshold for c in candidates)
            verdict = decide(scope.query_text, candidates, threshold=threshold)
            elapsed = time.perf_counter() - t0
            decision_times.append(elapsed)
            if gray:
                gray_zone_times.append(elapsed)
            ok, hit_line = False, None
            if verdict is not None:
                ok = components.correct(verdict.candidate.prompt, pair.text_b)
                hit_line = line_of[verdict.candidate.entry_id]
                configured.add(True, ok, duplicate)
            top = candidates[0] if candidates else None
            for t, tally in plain.items():
                if top is not None and top.similarity >= t:
                    tally.add(True, components.correct(top.prompt, pair.text_b), duplicate)
        if on_lookup is not None:
            on_lookup(Lookup(line=i + 1, hit_line=hit_line, exact=exact is not None,
                             label_correct=ok, candidates=candidates,
                             candidate_lines=[line_of[c.entry_id] for c in candidates]))
        if progress and i % 500 == 0:
            progress(i)

    result = configured.report(len(pairs), duplicates)
    result.update({
        "threshold": threshold,
        "queries": len(pairs),
        "duplicate_queries": duplicates,
        "stored_entries": len(index),
        "index_mode": index.mode,
        "decision": "guards",
        # Index search + decision per semantic lookup (embedding of the query excluded); the
        # gray-zone ones have a candidate at or above the threshold for the guards to judge.
        "lookup_ms_mean": _ms(np.mean(decision_times) if decision_times else 0.0),
        "lookup_ms_p50": _ms(np.percentile(decision_times, 50) if decision_times else 0.0),
        "lookup_ms_p99": _ms(np.percentile(decision_times, 99) if decision_times else 0.0),
        "gray_zone_lookups": len(gray_zone_times),
        "gray_zone_ms_p50": _ms(np.percentile(gray_zone_times, 50) if gray_zone_times else 0.0),
        "gray_zone_ms_p99": _ms(np.percentile(gray_zone_times, 99) if gray_zone_times else 0.0),
        "seconds": round(time.perf_counter() - started, 1),
        "store_seconds": round(stored_at - started, 1),
        "thresholds": [{"threshold": t, **plain[t].report(len(pairs), duplicates)}
                       for t in thresholds],
    })
    return result


def cache_evaluate(pairs: list[Pair], *, threshold: float, cache_dir: Path | None,
                   progress_file=None, verdicts: list[JudgedPair] | None = None,
                   on_lookup: Callable[[Lookup], None] | None = None,
                   precision: str | None = None) -> dict:
    """Run `evaluate` on `pairs` with the gateway's embedder, or one at `precision` (embeddings
    cached in `cache_dir`, per model and precision); with `progress_file`, show progress bars
    on it. With `verdicts` (semcache.judged), the decision's judged numbers go under `judged`:
    ValueError before the run when one does not match `pairs`. `on_lookup` as for
    `evaluate`."""
    from tqdm import tqdm

    from semcache.embedder import Embedder, get_embedder, model_path, precision_tag

    if verdicts is not None:
        verdicts = applicable(pairs, verdicts)  # a changed pairs file fails before the run
    outcomes: list[Outcome] = []

    def observe(lookup: Lookup) -> None:
        if verdicts is not None:
            outcomes.append(lookup.outcome)
        if on_lookup is not None:
            on_lookup(lookup)

    quiet = progress_file is None
    embedder = get_embedder() if precision is None else Embedder(precision=precision)

    def with_bar(texts: list[str]) -> np.ndarray:
        out = []
        with tqdm(total=len(texts), unit="text", desc="embedding", disable=quiet,
                  file=progress_file) as bar:
            for start in range(0, len(texts), 1024):
                out.append(embedder.embed_sync(texts[start:start + 1024]))
                bar.update(len(out[-1]))
        return np.concatenate(out) if out else np.zeros((0, 384), np.float32)

    def embed(texts: list[str]) -> np.ndarray:
        # The cache is per model and precision: int8 vectors are not fp32 ones.
        tag = precision_tag(str(model_path()), precision)
        return cached_embed(with_bar, texts, cache_dir, tag=tag)

    bar = tqdm(total=len(pairs), unit="query", desc="querying", disable=quiet,
               file=progress_file)
    last = [0]

    def progress(i: int) -> None:
        bar.update(i - last[0])
        last[0] = i

    result = evaluate(pairs, embed=embed, threshold=threshold, progress=progress,
                      on_lookup=None if verdicts is None and on_lookup is None else observe)
    bar.update(len(pairs) - last[0])
    bar.close()
    if verdicts is not None:
        result["judged"] = {"verdicts": len(verdicts),
                            **judged_report(pairs, outcomes, verdicts).as_dict()}
    return result


def _judged_lines(judged: dict) -> list[str]:
    def interval(low: float, high: float) -> str:
        return f"[{low:.3f}, {high:.3f}]"

    precision = "-" if judged["precision"] is None else (
        f"{judged['precision']:.3f}-{judged['precision_unsure_right']:.3f} "
        f"{interval(*judged['precision_interval'])}")
    recall = "-" if judged["recall"] is None else (
        f"{judged['recall']:.3f} {interval(*judged['recall_interval'])}")
    return [
        f"judged ({judged['verdicts']} verdicts): precision {precision} (UNSURE wrong-right, "
        f"95% interval)  recall {recall} ({judged['recalled']} of {judged['recall_queries']} "
        "queries with a SAME entry served one)",
        f"  coverage: {judged['hits_identical'] + judged['hits_judged']} of {judged['hits']} "
        f"hits ({judged['hits_identical']} on identical text; {judged['hits_judged']} judged: "
        f"{judged['same'] - judged['hits_identical']} SAME, {judged['different']} DIFFERENT, "
        f"{judged['unsure']} UNSURE), {judged['misses_judged']} of {judged['misses']} misses",
    ]


def report_lines(result: dict) -> list[str]:
    """Return an `evaluate` result as text lines: the decision (with its judged numbers when
    the result has them), its timing, plain thresholds."""
    lines = [
        f"{result['queries']} queries ({result['duplicate_queries']} duplicates), "
        f"{result['stored_entries']} entries stored ({result['index_mode']} index)",
        f"decision (cosine >= {result['threshold']} after the hard guards): hit rate "
        f"{result['hit_rate']:.3f}  precision {result['precision']:.3f}  "
        f"false hits/1k {result['false_hits_per_1k']:.1f}",
        *(_judged_lines(result["judged"]) if "judged" in result else []),
        f"search + decision per lookup: p50 {result['lookup_ms_p50']:.2f} ms, p99 "
        f"{result['lookup_ms_p99']:.2f} ms; {result['gray_zone_lookups']} lookups with a "
        f"candidate at or above the threshold: p50 {result['gray_zone_ms_p50']:.2f} ms, p99 "
        f"{result['gray_zone_ms_p99']:.2f} ms",
        "plain cosine thresholds:",
        "  threshold  hit_rate  precision  false_hits/1k",
    ]
    for row in result["thresholds"]:
        lines.append(f"  {row['threshold']:.2f}       {row['hit_rate']:.3f}     "
                     f"{row['precision']:.3f}      {row['false_hits_per_1k']:.1f}")
    return lines
