"""Measure each hard guard and each threshold against the labels and the hand-read verdicts.

    HF_HUB_OFFLINE=1 [SEMCACHE_EMBED_PRECISION=fp32|int8] .venv/bin/python \
        bench/semcache_guards_report.py PAIRS.jsonl [--verdicts semcache/data/judged_qqp_dev.jsonl]
        [--thresholds 0.95,0.955,...] [--json] [--unjudged /tmp/judge/new.jsonl]

One run of eval_cache's lookups (bench/semcache_judged_sample.py: cached in bench/.cache), then
every decision below re-decided from the same candidates: the guards the sample was drawn with
(numbers, negation, entities, order) at 0.968, each new guard added in turn, and all guards at
0.95 / 0.93 / 0.90. Per decision, over the whole file:
  label   hit rate on duplicates and precision of hits, as eval_cache counts them;
  judged  precision of hits and semantic recall estimated from the strata (exact hits are SAME;
          the sampled decision's semantic hits from the `hit` stratum, the gray pool's from the
          `gray` stratum, the rest pool's SAME share from `random`), with a 95% interval that
          combines the strata's Wilson bounds (UNSURE wrong for the low end, right for the high);
          `unjudged` counts the strata's hits without a verdict (the coverage: judge them, with
          `--unjudged`, and append the verdicts).
The decisions run on the configured embedder's cosines; the strata and their pools stay the
fp32 lookups' (SAMPLED_PRECISION), so another precision's hits are scored on the same sample and
`outside_pools` counts its semantic hits the pools do not cover (a query fp32 neither served nor
saw a candidate >= 0.90 for: not estimated). `--thresholds` measures all guards at those only.
"""

import argparse
import json
import sys
from collections import Counter, defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.semcache_judged_sample import (  # noqa: E402
    ROOT,
    SAMPLED_GUARDS,
    SAMPLED_PRECISION,
    SAMPLED_THRESHOLD,
    draw,
    judged_arguments,
    run_lookups,
)

NEW_GUARDS = ("deictic", "unreadable", "names", "role", "antonym")


def decisions(thresholds: list[float] | None = None) -> list[tuple[str, float, tuple | bool]]:
    """Return (name, threshold, guards) of every decision measured (all guards at `thresholds`
    only, when given)."""
    if thresholds:
        return [("all guards", threshold, True) for threshold in thresholds]
    rows = [("sampled guards", SAMPLED_THRESHOLD, SAMPLED_GUARDS)]
    added: tuple = SAMPLED_GUARDS
    for guard in NEW_GUARDS:
        added = (*added, guard)
        rows.append((f"+ {guard}", SAMPLED_THRESHOLD, added))
    for threshold in (0.966, 0.964, 0.962, 0.96, 0.95, 0.94, 0.93, 0.90):
        rows.append(("sampled guards", threshold, SAMPLED_GUARDS))
        rows.append(("all guards", threshold, True))
    return rows


def _outcome(pairs, record: dict, threshold: float, guards) -> tuple[int | None, int | None]:
    """Return (rank, line) of the candidate the decision serves the record's query, or Nones;
    exact hits are rank -1."""
    from semcache.decision import decide
    from semcache.namespaces import normalize_text

    if record["exact"]:
        return -1, record["hit"]
    verdict = decide(normalize_text(pairs[record["line"] - 1].text_b), record["candidates"],
                     threshold=threshold, guards=guards)
    if verdict is None:
        return None, None
    rank = record["candidates"].index(verdict.candidate)
    return rank, record["lines"][rank]


def _pool(record: dict) -> str:
    """Return which pool of the judged sample a query of the sampled lookups is in."""
    if record["exact"]:
        return "exact"
    if record["hit"] is not None:
        return "hit"
    if record["candidates"] and record["candidates"][0].similarity >= 0.90:
        return "gray"
    return "rest"


def measure(pairs, records, verdicts, strata, threshold: float, guards, outcome=None,
            pools=None) -> dict:
    """Return one decision's label and judged numbers over the whole file; `outcome(pairs,
    record)` decides another way (rank, line) than `decide` at `threshold` with `guards`.
    `pools`: the lookups the strata were drawn from, when `records` are another embedder's."""
    from semcache.judged import Outcome, judged_report, wilson

    pools = records if pools is None else pools
    pool_of = {p["line"]: _pool(p) for p in pools}
    hits = correct = correct_dup = outside = 0
    outcomes = {}
    for r in records:
        rank, line = (_outcome(pairs, r, threshold, guards) if outcome is None
                      else outcome(pairs, r))
        outcomes[r["line"]] = Outcome(query_line=r["line"], hit_line=line)
        if rank is None:
            continue
        hits += 1
        outside += rank != -1 and pool_of[r["line"]] == "rest"
        ok = r["label_correct"] if rank == -1 else r["label_ok"][rank]
        correct += ok
        correct_dup += ok and r["label"] == 1
    duplicates = sum(r["label"] for r in records)
    sizes = Counter(pool_of.values())
    exact, sampled, gray, rest = (sizes[name] for name in ("exact", "hit", "gray", "rest"))
    per = {name: judged_report(pairs, [outcomes[q] for q in lines], verdicts)
           for name, lines in strata.items()}
    # Estimated hits, SAME / UNSURE hits, judged hits, recall parts, over the whole file.
    est = {"hits": exact, "same": exact, "unsure": 0.0, "judged": exact, "low": exact,
           "high": exact, "served": 0.0, "wanted": 0.0, "unjudged": 0.0}
    for name, size in (("hit", sampled), ("gray", gray)):
        rep, n = per[name], len(strata[name])
        judged = rep.same + rep.different + rep.unsure
        weight = size * judged / n
        low, _ = wilson(rep.same, judged)
        _, high = wilson(rep.same + rep.unsure, judged)
        est["hits"] += size * rep.hits / n
        est["same"] += size * rep.same / n
        est["unsure"] += size * rep.unsure / n
        est["judged"] += weight
        est["low"] += weight * low
        est["high"] += weight * high
        est["served"] += size * rep.recalled / n
        est["wanted"] += size * rep.recall_queries / n
        est["unjudged"] += size * (rep.hits - judged) / n
    same_queries = {v.query_line for v in verdicts if v.verdict == "SAME"}
    by_line = {p["line"]: p for p in pools}
    rest_lines = [q for q in strata["random"] if by_line[q]["hit"] is None
                  and by_line[q]["candidates"][0].similarity < 0.90]
    est["wanted"] += rest * sum(q in same_queries for q in rest_lines) / len(rest_lines)
    unjudged = {name: rep.hits - rep.same - rep.different - rep.unsure
                for name, rep in per.items()}
    return {
        "label_hit_rate": round(correct_dup / duplicates, 4),
        "label_precision": round(correct / hits, 4) if hits else None,
        "hits_per_1k": round(1000 * est["hits"] / len(records), 1),
        "judged_precision": [round(x / est["judged"], 4) for x in (
            est["same"], est["same"] + est["unsure"], est["low"], est["high"])],
        "semantic_recall": round(est["served"] / est["wanted"], 4),
        "unjudged_hits_per_1k": round(1000 * est["unjudged"] / len(records), 1),
        "unjudged_in_strata": unjudged,
        "outside_pools": outside,
        "sample": {name: per[name].as_dict() for name in ("hit", "gray", "band", "random")},
        "outcomes": outcomes,
    }


def write_unjudged(pairs, records, verdicts, strata, results: list, out: Path) -> int:
    """Write the sampled queries' hits that have no verdict (texts: outside the repository)."""
    judged = {(v.query_line, v.candidate_line) for v in verdicts}
    by_line = {r["line"]: r for r in records}
    sampled = set().union(*strata.values())
    seen, count = set(), 0
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", encoding="utf-8") as handle:
        for name, result in results:
            for q in sorted(sampled):
                line = result["outcomes"][q].hit_line
                r = by_line[q]
                if line is None or r["exact"] or (q, line) in judged or (q, line) in seen:
                    continue
                seen.add((q, line))
                rank = r["lines"].index(line)
                handle.write(json.dumps({
                    "decision": name, "query_line": q, "candidate_line": line,
                    "cosine": round(r["candidates"][rank].similarity, 4),
                    "query": pairs[q - 1].text_b, "candidate": r["candidates"][rank].prompt,
                }) + "\n")
                count += 1
    return count


def load_judged(args) -> tuple[list, list[dict], list, dict[str, list[int]], list[dict]]:
    """Return (pairs, the configured embedder's lookup records, verdicts, query lines per
    stratum, the sampled lookups the strata were drawn from) for `args` (as `judged_arguments`
    parses them)."""
    from semcache.judged import applicable, load_verdicts

    cache = ROOT / "bench" / ".cache"
    pairs, pools = run_lookups(args.pairs, cache, precision=SAMPLED_PRECISION)
    _, records = run_lookups(args.pairs, cache)
    verdicts = applicable(pairs, load_verdicts(args.verdicts))
    strata = defaultdict(list)
    for stratum, r in draw(pools, args.seed):
        strata[stratum].append(r["line"])
    return pairs, records, verdicts, strata, pools


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    judged_arguments(parser)
    parser.add_argument("--unjudged", type=Path,
                        help="Write the sampled hits without a verdict here (outside the repo).")
    parser.add_argument("--thresholds", type=lambda text: [float(t) for t in text.split(",")],
                        help="Measure all guards at these thresholds only (comma-separated).")
    args = parser.parse_args()
    pairs, records, verdicts, strata, pools = load_judged(args)
    results = []
    for name, threshold, guards in decisions(args.thresholds):
        label = f"{threshold:.3f} {name}"
        results.append((label, measure(pairs, records, verdicts, strata, threshold, guards,
                                       pools=pools)))
    if args.unjudged:
        if ROOT in args.unjudged.resolve().parents:
            parser.error("--unjudged must be outside the repository (QQP text).")
        count = write_unjudged(pairs, records, verdicts, strata, results, args.unjudged)
        print(f"{count} unjudged hits -> {args.unjudged}", file=sys.stderr)
    for _, result in results:
        del result["outcomes"]
    if args.json:
        print(json.dumps(dict(results), indent=2))
        return
    print("decision: label hit rate, label precision | hits/1k, judged precision [UNSURE wrong, "
          "right; 95% low, high], semantic recall, unjudged hits/1k (in strata hit/gray), "
          "semantic hits outside the pools")
    for label, r in results:
        p = r["judged_precision"]
        print(f"  {label:<26} {r['label_hit_rate']:.3f} {r['label_precision']:.3f} | "
              f"{r['hits_per_1k']:6.1f}  {p[0]:.3f}-{p[1]:.3f} [{p[2]:.3f}, {p[3]:.3f}]  "
              f"{r['semantic_recall']:.3f}  {r['unjudged_hits_per_1k']:5.1f} "
              f"({r['unjudged_in_strata']['hit']}/{r['unjudged_in_strata']['gray']})  "
              f"{r['outside_pools']}")


if __name__ == "__main__":
    main()
