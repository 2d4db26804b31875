"""The savings report: spend, savings by source and shadow estimates, read from the ledger's
roll-ups.

`savings_summary` is the one place these figures are aggregated: `manage.py savings_report`, the
dashboard and anything else that shows savings read it. Every figure is a database aggregate
over roll-up rows (budgets.rollups), never over raw ledger rows, so its cost follows the window
and not the ledger's size (docs/savings.md says how each row's amounts are computed).
"""

from dataclasses import asdict, dataclass, fields
from datetime import datetime
from decimal import Decimal

from django.db.models import DecimalField, Q, Sum, Value
from django.db.models.functions import Coalesce

from budgets.models import RollupGrain
from budgets.rollups import rollups_since
from routing.models import ModelProfile, Tier

_ZERO = Value(Decimal(0), output_field=DecimalField(max_digits=30, decimal_places=12))
# Requests routing chose a model for: not named by the client (nor moved to a fallback because
# the named one was cooling down), and not answered from the cache.
_NOT_ROUTED = ("explicit", "cooldown", "")
ROUTED = ~Q(routing_reason__in=_NOT_ROUTED) & ~Q(routing_reason__startswith="cache:")
# A verified hit's background call (llmops/gateway/verification.py, VERIFY_REASON).
VERIFICATION = Q(routing_reason="cache:verify")


def _usd(field: str, condition: Q | None = None) -> Coalesce:
    return Coalesce(Sum(field, filter=condition), _ZERO)


def _count(field: str = "request_count", condition: Q | None = None) -> Coalesce:
    return Coalesce(Sum(field, filter=condition), 0)


@dataclass(frozen=True)
class SavingsSummary:
    """Savings over a window of the ledger (USD amounts; counts of requests)."""

    requests: int
    spend: Decimal
    # Realized: what llmops avoided on requests it acted on.
    saved_exact: Decimal        # exact cache hits
    saved_semantic: Decimal     # semantic cache hits
    saved_routing: Decimal      # routing, net: reference cost − charged (negatives included)
    routing_extra_cost: Decimal  # the part of it that is negative: dearer than the reference
    saved_total: Decimal        # the sum of the three sources (= the ledger's cost_saved)
    exact_hits: int
    semantic_hits: int
    # Routing's strong-model share: routed requests served by a premium-tier model.
    routed: int
    routed_strong: int
    # Shadow mode: requests served as sent, and what the cache and routing would have avoided.
    shadow_requests: int
    shadow_exact_hits: int
    shadow_semantic_hits: int
    shadow_saved_exact: Decimal
    shadow_saved_semantic: Decimal
    shadow_saved_routing: Decimal
    shadow_routed: int          # shadow rows with a would-route model
    shadow_routed_strong: int
    # Verified hits: the background calls that checked served semantic hits (their own rows).
    verifications: int
    verification_cost: Decimal

    @property
    def saved_cache(self) -> Decimal:
        return self.saved_exact + self.saved_semantic

    @property
    def without_llmops(self) -> Decimal:
        """Return the bill without llmops: what was charged plus what was avoided."""
        return self.spend + self.saved_total

    @property
    def strong_share(self) -> float | None:
        return self.routed_strong / self.routed if self.routed else None

    @property
    def shadow_saved_total(self) -> Decimal:
        return self.shadow_saved_exact + self.shadow_saved_semantic + self.shadow_saved_routing

    @property
    def shadow_strong_share(self) -> float | None:
        return self.shadow_routed_strong / self.shadow_routed if self.shadow_routed else None

    def as_dict(self) -> dict:
        """Return the summary for JSON: amounts as exact decimal strings, shares as floats."""
        data = {name: (str(value) if isinstance(value, Decimal) else value)
                for name, value in asdict(self).items()}
        data.update(saved_cache=str(self.saved_cache), without_llmops=str(self.without_llmops),
                    strong_share=self.strong_share,
                    shadow_saved_total=str(self.shadow_saved_total),
                    shadow_strong_share=self.shadow_strong_share)
        return data


def savings_summary(*, since: datetime, until: datetime | None = None,
                    team_id: int | None = None) -> SavingsSummary:
    """Return the savings of the ledger rows created from the hour of `since` to `until`, of
    one team or all (one aggregate over roll-ups, plus one query for the premium-tier model
    names). All teams read the per-model day grain; one team its own day rows (the per-model
    grain has no team)."""
    if team_id is None:
        rows = rollups_since(since, until, days=RollupGrain.DAY_BY_MODEL)
    else:
        rows = rollups_since(since, until).filter(team_id=team_id)
    strong = list(ModelProfile.objects.filter(tier=Tier.PREMIUM).values_list("name", flat=True))
    exact, semantic = Q(cache_status="hit_exact"), Q(cache_status="hit_semantic")
    # The shadow_* measures count shadow rows only (budgets.rollups.MEASURES).
    shadow_exact = Q(shadow_cache_status="hit_exact")
    shadow_semantic = Q(shadow_cache_status="hit_semantic")
    shadow_routed = ~Q(shadow_model="")
    figures = dict(
        requests=_count(),
        spend=_usd("cost"),
        saved_exact=_usd("cache_saved", exact),
        saved_semantic=_usd("cache_saved", semantic),
        saved_routing=_usd("routing_saved"),
        routing_extra_cost=_usd("routing_extra_cost"),
        saved_total=_usd("cost_saved"),
        exact_hits=_count(condition=exact),
        semantic_hits=_count(condition=semantic),
        routed=_count(condition=ROUTED),
        routed_strong=_count(condition=ROUTED & Q(served_model__in=strong)),
        shadow_requests=_count("shadow_requests"),
        shadow_exact_hits=_count("shadow_requests", shadow_exact),
        shadow_semantic_hits=_count("shadow_requests", shadow_semantic),
        shadow_saved_exact=_usd("shadow_cache_saved", shadow_exact),
        shadow_saved_semantic=_usd("shadow_cache_saved", shadow_semantic),
        shadow_saved_routing=_usd("shadow_routing_saved"),
        shadow_routed=_count("shadow_requests", shadow_routed),
        shadow_routed_strong=_count("shadow_requests",
                                    shadow_routed & Q(shadow_model__in=strong)),
        verifications=_count(condition=VERIFICATION),
        verification_cost=_usd("cost", VERIFICATION),
    )
    # Named apart from the roll-up columns: an aggregate may not read another's result.
    summed = rows.aggregate(**{f"of_{name}": value for name, value in figures.items()})
    totals = {name: summed[f"of_{name}"] for name in figures}
    totals["routing_extra_cost"] = -totals["routing_extra_cost"]
    return SavingsSummary(**{f.name: totals[f.name] for f in fields(SavingsSummary)})


def verified_hits(*, team_id: int | None = None, limit: int = 10) -> dict | None:
    """Return the verified-hit precision from the cache's per-namespace verdicts (all time: the
    store keeps counts, not rows) of one team or all, with the `limit` namespaces that have the
    most verdicts; None when the cache store is unreachable."""
    from semcache.selectors import namespace_stats, verified_precision
    from semcache.store import StoreUnavailable

    try:
        rows = namespace_stats(top=1)
    except StoreUnavailable:
        return None
    rows = [r for r in rows if (team_id is None or r["team_id"] == team_id)
            and r["verified_agree"] + r["verified_disagree"]]
    rows.sort(key=lambda r: -(r["verified_agree"] + r["verified_disagree"]))
    return {**verified_precision(rows), "namespaces": [
        {key: row[key] for key in ("namespace", "tenant", "model_scope", "threshold",
                                   "verified_agree", "verified_disagree", "precision",
                                   "precision_interval")} for row in rows[:limit]]}
