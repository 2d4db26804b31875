"""Distinct prompts for benches: so a cache that is on but missing really misses.

Uses the question side of ../shared/data/qqp_pairs_dev.jsonl when present (distinct questions,
read only, never shipped), else word salad from a seeded generator.
"""

import json
import random
from pathlib import Path

from bench.common import ROOT

QQP = ROOT.parent / "shared" / "data" / "qqp_pairs_dev.jsonl"
_WORDS = ("river", "quantum", "budget", "violin", "glacier", "tax", "python", "harvest", "orbit",
          "recipe", "lawsuit", "protein", "sonnet", "ferry", "vaccine", "mortgage", "comet",
          "chess", "volcano", "compiler", "opera", "tariff", "enzyme", "marathon", "pixel",
          "monsoon", "ledger", "falcon", "sculpture", "antenna", "bakery", "treaty")


def _load() -> list[str]:
    if QQP.exists():
        seen: dict[str, None] = {}
        with QQP.open() as handle:
            for line in handle:
                seen.setdefault(json.loads(line)["text_a"].strip(), None)
        return [text for text in seen if text]
    rng = random.Random(7)
    return [" ".join(rng.choice(_WORDS) for _ in range(12)) + f" #{i}?" for i in range(40_000)]


class PromptPool:
    """Hand out distinct prompts in order; wraps around (and says so) when exhausted."""

    def __init__(self) -> None:
        self.prompts = _load()
        self.cursor = 0
        self.wrapped = False

    def take(self, count: int) -> list[str]:
        """Return the next `count` prompts (at least one)."""
        count = max(1, min(count, len(self.prompts)))
        out = []
        for _ in range(count):
            if self.cursor >= len(self.prompts):
                self.cursor, self.wrapped = 0, True
            out.append(self.prompts[self.cursor])
            self.cursor += 1
        return out


def hit_prompt() -> str:
    """Return the one prompt the cache-hit scenario repeats."""
    return "What is the capital of France? Answer in one word."


def as_path(pool: PromptPool) -> Path:
    """Return where the pool's prompts came from (for the report)."""
    return QQP if QQP.exists() else Path("<generated>")
