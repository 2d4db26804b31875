"""Score the cache decision and plain cosine thresholds against the hand-read verdicts.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/semcache_judged_report.py PAIRS.jsonl \
        [--verdicts semcache/data/judged_qqp_dev.jsonl] [--seed 20240611] [--json]

Runs eval_cache's protocol through bench/semcache_judged_sample.py (the same lookups and seeded
strata), then semcache.judged.judged_report per decision: the shipped one
(CACHE_SIMILARITY_THRESHOLD after the hard guards) and plain cosine 0.95 / 0.93 / 0.90 with and
without the guards, beside QQP's label precision and hit rate, per stratum (`hit`, `random` and
`gray` are unbiased samples of their pools). From those: each decision over the whole file (hits
and DIFFERENT hits per 1,000 queries, judged precision, semantic recall), and, by kind, the
judged pairs that are not SAME at or above each cosine, with how many the hard guards refuse.
"""

import argparse
import json
import sys
from collections import Counter, defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.semcache_judged_sample import (  # noqa: E402
    ROOT,
    SAMPLED_PRECISION,
    STRATA,
    _settings,
    draw,
    judged_arguments,
    run_lookups,
)

THRESHOLDS = (0.95, 0.93, 0.90)


def score(pairs, by_line: dict, lines: list[int], verdicts, *, threshold: float,
          guards: bool) -> dict:
    """Return judged_report's numbers for one decision on `lines`, with label precision and
    label hit rate (eval_cache's notion of a correct hit) on the same queries."""
    from semcache.decision import decide
    from semcache.judged import Outcome, judged_report
    from semcache.namespaces import normalize_text

    outcomes, hits, right, right_on_duplicates = [], 0, 0, 0
    for line in lines:
        r = by_line[line]
        v = decide(normalize_text(pairs[line - 1].text_b), r["candidates"], threshold=threshold,
                   guards=guards)
        rank = r["candidates"].index(v.candidate) if v else None
        outcomes.append(Outcome(query_line=line, hit_line=None if v is None else r["lines"][rank]))
        if v is not None:
            hits += 1
            right += r["label_ok"][rank]
            right_on_duplicates += r["label_ok"][rank] and r["label"] == 1
    row = judged_report(pairs, outcomes, verdicts).as_dict()
    duplicates = sum(by_line[line]["label"] for line in lines)
    row["label_precision"] = round(right / hits, 4) if hits else None
    row["label_hit_rate"] = round(right_on_duplicates / duplicates, 4) if duplicates else None
    return row


def shipped_precision(records: list[dict], verdicts) -> dict:
    """Return the shipped decision's judged precision over all its hits: exact hits are SAME;
    semantic ones are weighted by label-correct / label-false share, each estimated from its
    judged random sample (the interval combines the strata's Wilson bounds: conservative)."""
    from semcache.judged import wilson

    verdict_of = {(v.query_line, v.candidate_line): v.verdict for v in verdicts}
    exact = sum(r["exact"] for r in records)
    semantic = [r for r in records if r["hit"] is not None and not r["exact"]]
    result = {"exact_hits": exact, "semantic_hits": len(semantic)}
    point = point_right = low = high = 0.0
    for name, ok in (("label_correct", True), ("label_false", False)):
        group = [r for r in semantic if r["label_correct"] == ok]
        judged = Counter(verdict_of[(r["line"], r["hit"])] for r in group
                         if (r["line"], r["hit"]) in verdict_of)
        n, same, unsure = sum(judged.values()), judged["SAME"], judged["UNSURE"]
        share = len(group) / len(semantic)
        point += share * same / n
        point_right += share * (same + unsure) / n
        low += share * wilson(same, n)[0]
        high += share * wilson(same + unsure, n)[1]
        result[name] = {"hits": len(group), "judged": dict(judged)}
    total = exact + len(semantic)
    # [point with UNSURE wrong, point with UNSURE right, interval low, interval high]
    result["semantic_precision"] = [round(x, 4) for x in (point, point_right, low, high)]
    result["all_hits_precision"] = [round((exact + len(semantic) * x) / total, 4)
                                    for x in (point, point_right, low, high)]
    return result


def whole_file(records: list[dict], shipped: dict, scores: dict, rest_same: float) -> dict:
    """Return each decision's judged numbers over the whole file, per 1,000 queries: the
    shipped hits (exact: SAME; semantic: `shipped`'s estimate) plus the hits it adds in the gray
    pool (no shipped hit, nearest entry at cosine >= 0.90), scaled from the gray stratum; no
    other query can hit at 0.90 or more. Semantic recall: SAME hits over the queries with a
    SAME candidate among those the exact path misses, the rest pool's share (`rest_same`) from
    the random stratum."""
    pool = sum(1 for r in records if not r["exact"] and r["hit"] is None and r["candidates"]
               and r["candidates"][0].similarity >= 0.90)
    exact, semantic = shipped["exact_hits"], shipped["semantic_hits"]
    rest = len(records) - exact - semantic - pool
    wrong_point, right_point, low, high = shipped["semantic_precision"]
    per_1k = 1000 / len(records)
    result = {"gray_pool": pool, "rest_pool": rest}
    for decision, row in scores["gray"].items():
        n, hit = row["hits"] + row["misses"], scores["hit"][decision]
        hit_n = hit["hits"] + hit["misses"]
        served = semantic * hit["recalled"] / hit_n + pool * row["recalled"] / n
        wanted = (semantic * hit["recall_queries"] / hit_n
                  + pool * row["recall_queries"] / n + rest * rest_same)
        added = pool * row["hits"] / n
        same = exact + semantic * wrong_point + pool * row["same"] / n
        unsure = semantic * (right_point - wrong_point) + pool * row["unsure"] / n
        hits = exact + semantic + added
        result[decision] = {
            "hits_per_1k": round(hits * per_1k, 1), "added_per_1k": round(added * per_1k, 1),
            "different_per_1k": round((hits - same - unsure) * per_1k, 1),
            "semantic_recall": round(served / wanted, 4),
            # [UNSURE wrong, UNSURE right, and the two parts' interval ends combined]
            "precision": [round(x / hits, 4) for x in (
                same, same + unsure,
                exact + semantic * low + added * row["precision_interval"][0],
                exact + semantic * high + added * row["precision_interval"][1])]}
    return result


def not_same_above(pairs, by_line: dict, verdicts, thresholds) -> dict:
    """Return, per cosine, the judged pairs at or above it that are not SAME, by verdict and
    kind, and how many of each the hard guards refuse; SAME pairs the guards refuse too."""
    from semcache.guards import compare
    from semcache.namespaces import normalize_text

    above = {f"{t:.3g}": Counter() for t in thresholds}
    for v in verdicts:
        r = by_line[v.query_line]
        candidate = r["candidates"][r["lines"].index(v.candidate_line)]
        refused = compare(normalize_text(pairs[v.query_line - 1].text_b), candidate.prompt).refused
        key = "SAME" if v.verdict == "SAME" else f"{v.verdict}/{v.kind}"
        for t in thresholds:
            if candidate.similarity >= t:
                above[f"{t:.3g}"][key] += 1
                above[f"{t:.3g}"][key + " refused"] += bool(refused)
    return {t: dict(sorted(c.items())) for t, c in above.items()}


def report(path: Path, verdicts_path: Path, seed: int) -> dict:
    """Return every number above for the pairs file and the verdicts."""
    from semcache.judged import load_verdicts, verdict_counts

    pairs, records = run_lookups(path, ROOT / "bench" / ".cache", precision=SAMPLED_PRECISION)
    verdicts = load_verdicts(verdicts_path)
    by_line = {r["line"]: r for r in records}
    strata = defaultdict(set)
    for stratum, r in draw(records, seed):
        strata[r["line"]].add(stratum)
    judged = sorted({v.query_line for v in verdicts})
    shipped = _settings().CACHE_SIMILARITY_THRESHOLD
    decisions = [(shipped, True)] + [(t, g) for t in THRESHOLDS for g in (True, False)]
    scopes = {"sample": judged}
    for stratum in STRATA:
        scopes[stratum] = [q for q in judged if stratum in strata[q]]
    scores = {name: {f"{t:.3g}{' guards' if g else ''}": score(
        pairs, by_line, lines, verdicts, threshold=t, guards=g) for t, g in decisions}
        for name, lines in scopes.items()}
    precision = shipped_precision(records, verdicts)
    same_queries = {v.query_line for v in verdicts if v.verdict == "SAME"}
    rest = [q for q in scopes["random"] if by_line[q]["hit"] is None
            and by_line[q]["candidates"][0].similarity < 0.90]
    rest_same = sum(q in same_queries for q in rest) / len(rest)
    return {
        "threshold": shipped, "verdicts": verdict_counts(verdicts),
        "queries": {name: len(lines) for name, lines in scopes.items()},
        "shipped": precision, "whole_file": whole_file(records, precision, scores, rest_same),
        "scores": scores,
        "not_same_at_or_above": not_same_above(pairs, by_line, verdicts, (shipped, *THRESHOLDS)),
    }


def print_report(result: dict) -> None:
    """Print the numbers as tables."""
    def num(x):
        return "  -  " if x is None else f"{x:.3f}"

    print(f"queries judged: {result['queries']}; verdicts {result['verdicts']['verdict']}")
    print(f"shipped decision over all its hits: {result['shipped']}")
    print("whole file, per 1k queries: decision, hits (added by the gray pool), DIFFERENT hits, "
          "judged precision [UNSURE wrong, UNSURE right, 95% low, high], semantic recall")
    for decision, row in result["whole_file"].items():
        if not decision.endswith("_pool"):
            print(f"  {decision:<12} {row['hits_per_1k']:6.1f} ({row['added_per_1k']:5.1f})  "
                  f"{row['different_per_1k']:5.1f}  {row['precision']}  "
                  f"{row['semantic_recall']:.3f}")
    for name, rows in result["scores"].items():
        print(f"\n[{name}] decision: judged precision [low: UNSURE wrong, high: UNSURE right]; "
              "judged recall (served/has SAME); label precision; label hit rate; hits S/D/U; "
              "DIFFERENT hits by kind")
        for decision, row in rows.items():
            interval = "[{:.3f}, {:.3f}]".format(*row["precision_interval"])
            print(f"  {decision:<12} {num(row['precision'])} {interval}  {num(row['recall'])} "
                  f"({row['recalled']}/{row['recall_queries']})  {num(row['label_precision'])}  "
                  f"{num(row['label_hit_rate'])}  {row['same']}/{row['different']}/"
                  f"{row['unsure']}  {row['different_by_kind']}")
    print("\njudged pairs at or above a cosine (refused by the hard guards):")
    for t, counts in result["not_same_at_or_above"].items():
        print(f"  {t}: " + ", ".join(f"{k} {n} ({counts[k + ' refused']})"
                                      for k, n in counts.items() if not k.endswith("refused")))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    judged_arguments(parser)
    args = parser.parse_args()
    result = report(args.pairs, args.verdicts, args.seed)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print_report(result)


if __name__ == "__main__":
    main()
