"""Verified hits: does a cached answer agree with a fresh one, and what that says about a
namespace's threshold.

A verified hit is a semantic hit whose request was also answered upstream (docs/savings.md,
"Verified hits"). Its two answers agree when their embeddings (this cache's embedder) are at
least SEMCACHE_VERIFY_AGREEMENT alike. Each namespace counts its verdicts; its hit precision is
agreements / verdicts, with a 95% Wilson interval. Judged on the verdicts since the threshold last
moved, a namespace clearly below SEMCACHE_PRECISION_TARGET tightens by a step and one clearly above
target + margin loosens by one.
"""

from dataclasses import dataclass

import numpy as np
from django.conf import settings

from semcache.judged import wilson


@dataclass(frozen=True)
class Precision:
    """A namespace's measured hit precision: verdicts, agreements and the 95% interval."""

    agree: int
    disagree: int

    @property
    def verdicts(self) -> int:
        return self.agree + self.disagree

    @property
    def value(self) -> float | None:
        return self.agree / self.verdicts if self.verdicts else None

    @property
    def interval(self) -> tuple[float, float]:
        return wilson(self.agree, self.verdicts)

    def as_dict(self) -> dict:
        low, high = self.interval
        return {"verified_agree": self.agree, "verified_disagree": self.disagree,
                "precision": None if self.value is None else round(self.value, 4),
                "precision_interval": [round(low, 4), round(high, 4)]}


@dataclass(frozen=True)
class ThresholdMove:
    """A namespace's threshold moved by verified hits (logged as semcache.ThresholdChange)."""

    namespace: str
    team_id: int | None
    old: float
    new: float
    window: Precision      # the verdicts the move was decided on
    target: float


def threshold_step(window: Precision) -> float:
    """Return how the threshold should move on the verdicts since its last move: +step when
    precision is clearly below target (the interval's upper end under it), -step when clearly
    above target + margin (its lower end over that), else 0; nothing before enough verdicts."""
    if window.verdicts < settings.SEMCACHE_VERIFY_MIN_SAMPLES:
        return 0.0
    low, high = window.interval
    target = settings.SEMCACHE_PRECISION_TARGET
    if high < target:
        return settings.SEMCACHE_THRESHOLD_STEP
    if low > target + settings.SEMCACHE_PRECISION_MARGIN:
        return -settings.SEMCACHE_THRESHOLD_STEP
    return 0.0


def delta_bounds(base: float) -> tuple[float, float]:
    """Return the range a namespace's threshold delta may take over `base`, so that base + delta
    stays within [SEMCACHE_THRESHOLD_MIN, SEMCACHE_THRESHOLD_MAX] (a base already outside is
    never moved further out)."""
    return (min(0.0, settings.SEMCACHE_THRESHOLD_MIN - base),
            max(0.0, settings.SEMCACHE_THRESHOLD_MAX - base))


def answer_agreement(cached: np.ndarray, fresh: np.ndarray) -> float:
    """Return the cosine of two answers' embeddings."""
    a, b = np.asarray(cached, dtype=np.float32), np.asarray(fresh, dtype=np.float32)
    norm = float(np.linalg.norm(a) * np.linalg.norm(b))
    return float(a @ b) / norm if norm else 0.0


def threshold_change_create(*, move: ThresholdMove):
    """Record a threshold move in the audit log (semcache.models.ThresholdChange); return it."""
    from semcache.models import ThresholdChange

    low, high = move.window.interval
    return ThresholdChange.objects.create(
        namespace=move.namespace[:64], team_id=move.team_id, old_threshold=move.old,
        new_threshold=move.new, agree=move.window.agree, disagree=move.window.disagree,
        precision_low=low, precision_high=high, target=move.target)
