"""Check the ledger's roll-ups against its raw rows, summed row by row in Python."""

from collections import defaultdict

from budgets.models import RollupGrain, UsageRecord, UsageRollup
from budgets.rollups import (
    COARSE_GRAINS,
    DIMENSIONS,
    MEASURES,
    folded_until,
    grain_dims,
    grain_start,
)


def ledger_sums(grain: str) -> dict:
    """Return {(start, dims): {measure: sum}} of the raw ledger, row by row (dimensions a
    coarse grain does not keep collapsed as it collapses them)."""
    out: dict = defaultdict(lambda: defaultdict(int))
    for row in UsageRecord.objects.iterator():
        key = (grain_start(grain, row.created_at),
               tuple(grain_dims(grain, [getattr(row, d) for d in DIMENSIONS])))
        for m in MEASURES:
            out[key][m.column] += m.of_row(row)
    return {k: dict(v) for k, v in out.items()}


def rollup_sums(grain: str) -> dict:
    """Return the roll-up rows of `grain` as {(start, dims): {measure: value}}."""
    out = {}
    for r in UsageRollup.objects.filter(grain=grain):
        key = (r.start, tuple(getattr(r, d) for d in DIMENSIONS))
        assert key not in out, "one roll-up row per bucket"
        out[key] = {m.column: getattr(r, m.column) for m in MEASURES}
    return out


def assert_rollups_match_ledger() -> None:
    """Assert every roll-up of every grain equals the sums of its raw ledger rows, and no roll-up
    row stands for no row; the coarse grains hold the folded days, and only those."""
    folded = folded_until()
    for grain in RollupGrain.values:
        rolled, ledger = rollup_sums(grain), ledger_sums(grain)
        if grain in COARSE_GRAINS:
            ledger = {k: v for k, v in ledger.items() if folded is not None and k[0] < folded}
        assert rolled == ledger, grain
