"""Read labeled routing outcomes from JSONL into `ExampleLabel`s (import and evaluation)."""

import json
from pathlib import Path

from routing.models import Tier
from routing.services import ExampleLabel


def parse_target(spec: str) -> tuple[str, str]:
    """Return ("model"|"tier", name) for `tier:NAME`, `model:NAME`, or a bare tier name."""
    kind, _, name = spec.partition(":")
    if not name:
        kind, name = ("tier", spec) if spec in Tier.values else ("model", spec)
    if kind not in ("model", "tier") or not name:
        raise ValueError(f"Bad target {spec!r}: use tier:NAME or model:NAME.")
    if kind == "tier" and name not in Tier.values:
        raise ValueError(f"Unknown tier {name!r}: one of {', '.join(Tier.values)}.")
    return kind, name


def _label(prompt: str, target: tuple[str, str], score: float, source: str) -> ExampleLabel:
    kind, name = target
    return ExampleLabel(prompt=prompt, score=score, source=source,
                        model_name=name if kind == "model" else "",
                        tier=name if kind == "tier" else "")


def read_labels(path: str | Path, *, targets: dict[str, tuple[str, str]], source: str,
                limit: int | None = None) -> list[ExampleLabel]:
    """Return the labels in a JSONL file: outcome rows give one label per model."""
    labels: list[ExampleLabel] = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if limit is not None and number > limit:
                break
            if not line.strip():
                continue
            row = json.loads(line)
            prompt = row.get("prompt")
            if not isinstance(prompt, str) or not prompt:
                raise ValueError(f"{path}:{number}: a row needs a non-empty 'prompt'.")
            if "weak_correct" in row or "strong_correct" in row:
                for key in ("weak", "strong"):
                    if f"{key}_correct" in row:
                        labels.append(_label(prompt, targets[key],
                                             float(bool(row[f"{key}_correct"])), source))
                continue
            if "score" not in row or not (row.get("model") or row.get("tier")):
                raise ValueError(f"{path}:{number}: need score and model or tier.")
            score = float(row["score"])
            if not 0.0 <= score <= 1.0:
                raise ValueError(f"{path}:{number}: score must be in [0, 1].")
            target = ("model", row["model"]) if row.get("model") else parse_target(
                f"tier:{row['tier']}")
            labels.append(_label(prompt, target, score, row.get("source") or source))
    return labels
