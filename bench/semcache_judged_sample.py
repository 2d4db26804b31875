"""Draw the judged evaluation's sample of queries through the cache's real code.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/semcache_judged_sample.py PAIRS.jsonl \
        --out /tmp/judge/pairs.jsonl [--seed 20240611]

eval_cache's protocol (semcache/evaluation.py): every text_a is stored through the real store,
index and decision code, every text_b is looked up. `--out` writes the pairs to judge (query, its
top 1-3 stored candidates, cosine, outcome, label) to a file that must stay outside the repository
(QQP text); bench/semcache_judged_report.py scores decisions against the verdicts. Strata, over
the queries the exact path does not answer (identical text needs no judge):
  hit    random semantic hits of the shipped decision (an unbiased sample of its hits);
  false  more semantic hits whose entry QQP's labels call wrong;
  band   label-1 queries without a hit whose nearest entry has a cosine in 0.80-0.97;
  random a plain random slice;
  gray   queries without a hit whose nearest entry has a cosine >= 0.90 (the hits a lower
         threshold or looser guards would add), drawn from the whole pool.
"""

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "llmops.settings.test")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

STRATA = {"hit": 120, "false": 40, "band": 120, "random": 100, "gray": 80}
# Drawn from its whole pool, queries of the strata before included (judged once, scored in both):
# an unbiased sample of the hits a lower threshold would add.
OVERLAPPING = {"gray"}
BAND = (0.80, 0.97)
MIN_COSINE = 0.80  # candidates below this are judged only when they are a query's nearest
MAX_CANDIDATES = 3


def run_lookups(path: Path, cache_dir: Path | None) -> tuple[list, list[dict]]:
    """Store every text_a, look up every text_b; return (pairs, one record per query)."""
    threshold = _settings().CACHE_SIMILARITY_THRESHOLD
    import numpy as np

    from semcache.decision import decide
    from semcache.embedder import get_embedder, model_path, precision_tag
    from semcache.evaluation import cached_embed, components_of, load_pairs
    from semcache.namespaces import build_scope, normalize_text
    from semcache.services import CANDIDATES, CacheEngine
    from semcache.store import MemoryStore

    pairs = load_pairs(path)
    components = components_of(pairs)
    stored = list(dict.fromkeys(p.text_a for p in pairs))
    first_line = {}
    for line, pair in enumerate(pairs, 1):
        first_line.setdefault(pair.text_a, line)
    embedder = get_embedder()

    def embed(texts):
        return np.concatenate([embedder.embed_sync(texts[i:i + 1024])
                               for i in range(0, len(texts), 1024)])

    # The same texts and tag as eval_cache, so both share bench/.cache.
    vectors = cached_embed(embed, stored + [p.text_b for p in pairs], cache_dir,
                           tag=precision_tag(str(model_path())))
    engine = CacheEngine(MemoryStore(max_events=1))

    def scope_of(text):
        return build_scope(team_id=0, messages=[{"role": "user", "content": text}],
                           requested_model="eval", answer_params={})

    line_of = {}
    answer = {"role": "assistant", "content": "stand-in answer"}
    for text, vector in zip(stored, vectors[: len(stored)], strict=True):
        entry = engine.put(scope_of(text), vector=vector, message=answer, finish_reason="stop",
                           model="eval", usage={}, cost=0, ttl_seconds=24 * 3600)
        line_of[entry.id] = first_line[text]
    index = engine.registry.index_for(scope_of(stored[0]).namespace)
    now, records = time.time(), []
    for line, (pair, vector) in enumerate(zip(pairs, vectors[len(stored):], strict=True), 1):
        scope = scope_of(pair.text_b)
        exact = engine.find_exact(scope)
        candidates = [] if exact else index.search(vector, CANDIDATES, now=now)
        verdict = None if exact else decide(scope.query_text, candidates, threshold=threshold)

        def label_ok(prompt, query=pair.text_b):  # eval_cache's notion of a correct hit
            return normalize_text(prompt) == normalize_text(query) or \
                components.find(prompt) == components.find(query)

        records.append({
            "line": line, "label": pair.label, "exact": exact is not None,
            "candidates": candidates, "lines": [line_of[c.entry_id] for c in candidates],
            "label_ok": [label_ok(c.prompt) for c in candidates],
            "hit": line_of[verdict.candidate.entry_id] if verdict
            else line_of[exact.entry.id] if exact else None,
            "label_correct": bool(verdict and label_ok(verdict.candidate.prompt)
                                  or exact and label_ok(exact.entry.prompt)),
        })
    return pairs, records


def _settings():
    import django

    django.setup()
    from django.conf import settings

    return settings


def draw(records: list[dict], seed: int) -> list[tuple[str, dict]]:
    """Return (stratum, record) for the sampled queries (a query twice only when an
    overlapping stratum drew it again)."""
    rng = random.Random(seed)
    semantic = [r for r in records if not r["exact"] and r["candidates"]]
    pools = {
        "hit": [r for r in semantic if r["hit"] is not None],
        "false": [r for r in semantic if r["hit"] is not None and not r["label_correct"]],
        "band": [r for r in semantic if r["hit"] is None and r["label"] == 1
                 and BAND[0] <= r["candidates"][0].similarity < BAND[1]],
        "random": semantic,
        "gray": [r for r in semantic if r["hit"] is None and r["candidates"][0].similarity >= 0.90],
    }
    taken, sample = set(), []
    for stratum, size in STRATA.items():
        pool = [r for r in pools[stratum] if stratum in OVERLAPPING or r["line"] not in taken]
        for record in rng.sample(pool, min(size, len(pool))):
            taken.add(record["line"])
            sample.append((stratum, record))
    return sample


def write_sample(pairs, sample, out: Path) -> int:
    """Write one line per (query, candidate) to judge; return how many."""
    out.parent.mkdir(parents=True, exist_ok=True)
    count, written = 0, set()
    with open(out, "w", encoding="utf-8") as handle:
        for stratum, record in sample:
            if record["line"] in written:
                continue
            written.add(record["line"])
            for rank, (c, line) in enumerate(zip(record["candidates"], record["lines"],
                                                 strict=True)):
                if rank >= MAX_CANDIDATES or (rank and c.similarity < MIN_COSINE):
                    break
                handle.write(json.dumps({
                    "stratum": stratum, "query_line": record["line"], "candidate_line": line,
                    "rank": rank, "cosine": round(c.similarity, 4),
                    "outcome": "hit" if record["hit"] == line else "miss",
                    "label": record["label"], "label_correct": record["label_correct"],
                    "query": pairs[record["line"] - 1].text_b, "candidate": c.prompt,
                }) + "\n")
                count += 1
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pairs", type=Path)
    parser.add_argument("--out", type=Path, required=True,
                        help="Pairs to judge (outside the repository).")
    parser.add_argument("--seed", type=int, default=20240611)
    parser.add_argument("--cache-dir", default=str(ROOT / "bench" / ".cache"))
    args = parser.parse_args()
    cache_dir = None if args.cache_dir.lower() == "none" else Path(args.cache_dir)
    pairs, records = run_lookups(args.pairs, cache_dir)
    if ROOT in args.out.resolve().parents:
        parser.error("--out must be outside the repository (QQP text is never copied in).")
    sample = draw(records, args.seed)
    queries = len({record["line"] for _, record in sample})
    print(f"{queries} queries, {write_sample(pairs, sample, args.out)} pairs -> {args.out}")



if __name__ == "__main__":
    main()
