"""Judged evaluation: a decision's precision and recall against hand-read verdicts on (query,
stored question) pairs (file format and method: docs/semantic-cache.md, "Judged evaluation")."""

import hashlib
import json
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

from semcache.namespaces import normalize_text

VERDICTS = ("SAME", "DIFFERENT", "UNSURE")
KINDS = ("paraphrase", "deictic", "role_swap", "antonym", "entity_swap", "other")
SIDES = ("a", "b")
Z95 = 1.959964
# The shipped verdicts, on the QQP dev pairs (../shared/data/qqp_pairs_dev.jsonl).
QQP_DEV_VERDICTS = Path(__file__).resolve().parent / "data" / "judged_qqp_dev.jsonl"


class TextPair(Protocol):
    text_a: str
    text_b: str


@dataclass(frozen=True)
class JudgedPair:
    """One line of a verdict file; it holds no question text."""

    query_line: int      # the pair whose text_b is the query (1-based)
    candidate_line: int  # the pair holding the stored question, on `candidate_side`
    candidate_side: str
    hash: str            # pair_hash(query, candidate): detects a changed pairs file
    verdict: str         # SAME: the stored question's answer fully answers the query
    kind: str
    reason: str = ""


@dataclass(frozen=True)
class Outcome:
    """A decision's answer to one query: the line whose stored question it served, or None."""

    query_line: int
    hit_line: int | None
    hit_side: str = "a"


def pair_hash(query: str, candidate: str) -> str:
    """Return the sha256 (hex) of the two texts, each normalized as the cache does
    (semcache.namespaces.normalize_text: NFKC, whitespace runs collapsed, ends stripped), joined
    by a newline, query first."""
    return hashlib.sha256(
        f"{normalize_text(query)}\n{normalize_text(candidate)}".encode()).hexdigest()


def load_verdicts(path: Path) -> list[JudgedPair]:
    """Return the verdicts of a JSONL file; ValueError names the first malformed line."""
    verdicts = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                judged = JudgedPair(
                    query_line=int(row["query_line"]), candidate_line=int(row["candidate_line"]),
                    candidate_side=str(row["candidate_side"]), hash=str(row["hash"]),
                    verdict=str(row["verdict"]), kind=str(row["kind"]),
                    reason=str(row.get("reason", "")))
            except (ValueError, KeyError, TypeError) as error:
                raise ValueError(f"{path}:{number}: not a verdict ({error})") from error
            if (judged.verdict not in VERDICTS or judged.kind not in KINDS
                    or judged.candidate_side not in SIDES):
                raise ValueError(f"{path}:{number}: verdict, kind or side out of range")
            verdicts.append(judged)
    return verdicts


def _text(pairs: Sequence[TextPair], line: int, side: str) -> str:
    pair = pairs[line - 1]
    return pair.text_a if side == "a" else pair.text_b


def applicable(pairs: Sequence[TextPair], verdicts: Sequence[JudgedPair]) -> list[JudgedPair]:
    """Return the verdicts whose lines exist in `pairs` (a file read with a limit holds fewer);
    ValueError when a pair's texts no longer match its hash (the source file changed)."""
    kept, stale = [], []
    for v in verdicts:
        if not (0 < v.query_line <= len(pairs) and 0 < v.candidate_line <= len(pairs)):
            continue
        query = pairs[v.query_line - 1].text_b
        if pair_hash(query, _text(pairs, v.candidate_line, v.candidate_side)) != v.hash:
            stale.append(v)
        else:
            kept.append(v)
    if stale:
        raise ValueError(f"{len(stale)} verdicts do not match the pairs file (first: query line "
                         f"{stale[0].query_line}, candidate line {stale[0].candidate_line})")
    return kept


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Return the Wilson score interval of a proportion (0, 1 when n is 0)."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass
class JudgedReport:
    """A decision's judged numbers and how much of its run the verdicts cover."""

    hits: int = 0                # the run's hits, judged or not
    misses: int = 0
    hits_identical: int = 0      # hits on the same text: SAME without a verdict
    hits_judged: int = 0         # hits with a verdict (identical ones excluded)
    misses_judged: int = 0       # misses of queries that have at least one verdict
    same: int = 0                # judged hits by verdict, identical ones counted SAME
    different: int = 0
    unsure: int = 0
    recall_queries: int = 0      # queries with at least one SAME candidate
    recalled: int = 0            # ... of which the decision served a SAME one
    different_by_kind: dict = field(default_factory=dict)   # DIFFERENT hits by kind

    def as_dict(self) -> dict:
        """Return the counts with precision and recall and their 95% Wilson intervals."""
        scored = self.same + self.different + self.unsure
        low, _ = wilson(self.same, scored)
        _, high = wilson(self.same + self.unsure, scored)
        r_low, r_high = wilson(self.recalled, self.recall_queries)
        return {
            **asdict(self),
            # UNSURE as wrong for the point and the low end, as right for the high end.
            "precision": round(self.same / scored, 4) if scored else None,
            "precision_unsure_right": round((self.same + self.unsure) / scored, 4)
            if scored else None,
            "precision_interval": [round(low, 4), round(high, 4)],
            "recall": round(self.recalled / self.recall_queries, 4)
            if self.recall_queries else None,
            "recall_interval": [round(r_low, 4), round(r_high, 4)],
            "coverage_hits": round((self.hits_judged + self.hits_identical) / self.hits, 4)
            if self.hits else None,
            "coverage_misses": round(self.misses_judged / self.misses, 4)
            if self.misses else None,
        }


def judged_report(pairs: Sequence[TextPair], outcomes: Sequence[Outcome],
                  verdicts: Sequence[JudgedPair]) -> JudgedReport:
    """Score a decision's outcomes on `pairs` (the evaluated file, line N = pairs[N - 1])
    against the verdicts: precision of its judged hits, recall over the queries that have a SAME
    candidate (the share served a SAME one), and the coverage of both."""
    by_pair = {(v.query_line, v.candidate_line, v.candidate_side): v
               for v in applicable(pairs, verdicts)}
    same_queries = {v.query_line for v in by_pair.values() if v.verdict == "SAME"}
    judged_queries = {v.query_line for v in by_pair.values()}
    report, kinds = JudgedReport(), Counter()
    for outcome in outcomes:
        q = outcome.query_line
        if outcome.hit_line is None:
            report.misses += 1
            report.misses_judged += q in judged_queries
            report.recall_queries += q in same_queries
            continue
        report.hits += 1
        verdict = by_pair.get((q, outcome.hit_line, outcome.hit_side))
        if normalize_text(pairs[q - 1].text_b) == normalize_text(
                _text(pairs, outcome.hit_line, outcome.hit_side)):
            report.hits_identical += 1
            label = "SAME"
        elif verdict is not None:
            report.hits_judged += 1
            label = verdict.verdict
            if label == "DIFFERENT":
                kinds[verdict.kind] += 1
        else:
            label = None
        report.same += label == "SAME"
        report.different += label == "DIFFERENT"
        report.unsure += label == "UNSURE"
        if q in same_queries:
            report.recall_queries += 1
            report.recalled += label == "SAME"
    report.different_by_kind = dict(sorted(kinds.items()))
    return report


def verdict_counts(verdicts: Sequence[JudgedPair]) -> dict:
    """Return how many verdicts there are of each verdict and kind."""
    return {"verdict": dict(Counter(v.verdict for v in verdicts)),
            "kind": dict(Counter(v.kind for v in verdicts)),
            "verdict_kind": dict(Counter(f"{v.verdict}/{v.kind}" for v in verdicts))}
