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
import hashlib
import json
import os
import pickle
import random
import sys
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


# The decision the strata were drawn with (the guards of the time at cosine 0.968): `hit`,
# `false`, `band` and `gray` are defined by its hits, so the draw, and the verdicts read on it,
# stay the same whatever the shipped decision becomes.
SAMPLED_THRESHOLD = 0.968
SAMPLED_GUARDS = ("numbers", "negation", "entities", "order")
# ... over the fp32 embedder's cosines (the strata's pools are its lookups', whichever embedder
# the decisions scored against them run on).
SAMPLED_PRECISION = "fp32"


def run_lookups(path: Path, cache_dir: Path | None, *,
                precision: str | None = None) -> tuple[list, list[dict]]:
    """Run eval_cache's lookups (semcache.evaluation.cache_evaluate) on the file with the
    embedder at `precision` (default: the configured one); return (pairs, one record per query,
    its `hit` the sampled decision's). The records are cached in `cache_dir` per pairs file and
    precision (they hold its text: never committed)."""
    _settings()
    from semcache.decision import decide
    from semcache.embedder import configured_precision
    from semcache.evaluation import cache_evaluate, components_of, load_pairs
    from semcache.namespaces import normalize_text

    precision = precision or configured_precision()
    pairs = load_pairs(path)
    cached = None
    if cache_dir is not None:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:24]
        suffix = "" if precision == "fp32" else f"-{precision}"
        cached = Path(cache_dir) / f"judged-lookups-{digest}{suffix}.pickle"
        if cached.exists():
            with open(cached, "rb") as handle:
                return pairs, pickle.load(handle)
    components = components_of(pairs)
    records = []

    def record(lookup) -> None:
        pair = pairs[lookup.line - 1]
        hit, label_correct = lookup.hit_line, lookup.label_correct
        if not lookup.exact:
            verdict = decide(normalize_text(pair.text_b), lookup.candidates,
                             threshold=SAMPLED_THRESHOLD, guards=SAMPLED_GUARDS)
            rank = None if verdict is None else lookup.candidates.index(verdict.candidate)
            hit = None if rank is None else lookup.candidate_lines[rank]
            label_correct = rank is not None and components.correct(
                verdict.candidate.prompt, pair.text_b)
        records.append({
            "line": lookup.line, "label": pair.label, "exact": lookup.exact,
            "candidates": lookup.candidates, "lines": lookup.candidate_lines,
            "label_ok": [components.correct(c.prompt, pair.text_b) for c in lookup.candidates],
            "hit": hit, "label_correct": label_correct,
        })

    # The same embeddings cache as eval_cache (bench/.cache by default).
    cache_evaluate(pairs, threshold=SAMPLED_THRESHOLD, cache_dir=cache_dir, on_lookup=record,
                   precision=precision)
    if cached is not None:
        with open(cached, "wb") as handle:
            pickle.dump(records, handle)
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


def judged_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the arguments of the benches that score decisions against the verdicts."""
    parser.add_argument("pairs", type=Path)
    parser.add_argument("--verdicts", type=Path,
                        default=ROOT / "semcache" / "data" / "judged_qqp_dev.jsonl")
    parser.add_argument("--seed", type=int, default=20240611)
    parser.add_argument("--json", action="store_true")


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
    pairs, records = run_lookups(args.pairs, cache_dir, precision=SAMPLED_PRECISION)
    if ROOT in args.out.resolve().parents:
        parser.error("--out must be outside the repository (QQP text is never copied in).")
    sample = draw(records, args.seed)
    queries = len({record["line"] for _, record in sample})
    print(f"{queries} queries, {write_sample(pairs, sample, args.out)} pairs -> {args.out}")



if __name__ == "__main__":
    main()
