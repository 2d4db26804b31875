"""Reads: per-namespace statistics (hits, misses, hit rate, similarity, saved cost, top entries,
verified-hit precision and the threshold in force)."""

import time
from decimal import Decimal

from django.conf import settings

from semcache.services import get_engine
from semcache.verification import Precision


def _team_thresholds() -> dict[int, float]:
    """Return the teams whose cache policy sets a threshold, with it (one query)."""
    from semcache.models import TeamCachePolicy

    return dict(TeamCachePolicy.objects.filter(similarity_threshold__isnull=False)
                .values_list("team_id", "similarity_threshold"))


def namespace_stats(*, top: int = 5) -> list[dict]:
    """Return one row per namespace, busiest first."""
    engine = get_engine()
    store = engine.store
    rows = []
    now = time.time()
    thresholds = _team_thresholds()
    for namespace, info in store.namespaces().items():
        stats = store.stats(namespace, top=top)
        lookups = stats["hits"] + stats["misses"]
        top_entries = []
        for entry_id, hits in stats["top"]:
            entry = store.get(entry_id)
            if entry is not None:
                top_entries.append({"id": entry_id, "hits": hits, "prompt": entry.prompt[:80]})
        rows.append({
            "namespace": namespace,
            "tenant": info.get("tenant"),
            "model_scope": info.get("model_scope"),
            "entries": len(store.members(namespace, now=now)),
            "hits": stats["hits"],
            "misses": stats["misses"],
            "hit_rate": round(stats["hits"] / lookups, 4) if lookups else 0.0,
            "avg_similarity": round(stats["similarity_sum"] / stats["semantic_hits"], 4)
            if stats["semantic_hits"] else None,
            "saved_cost": Decimal(stats["saved_cost"]),
            "top_entries": top_entries,
            "team_id": info.get("team_id"),
            # The namespace's threshold now: its team's (or the global one), moved by feedback
            # and verified hits.
            "threshold": round(engine.threshold_for(namespace, thresholds.get(
                info.get("team_id"), settings.CACHE_SIMILARITY_THRESHOLD)), 4),
            **Precision(stats.get("verified_agree", 0),
                        stats.get("verified_disagree", 0)).as_dict(),
        })
    rows.sort(key=lambda r: (-(r["hits"] + r["misses"]), r["namespace"]))
    return rows


def verified_precision(rows: list[dict], *, team_id: int | None = None) -> dict:
    """Return the verified-hit precision over namespace rows (of one team's namespaces, or
    all): verdicts summed, with its 95% Wilson interval."""
    rows = [r for r in rows if team_id is None or r["team_id"] == team_id]
    return Precision(sum(r["verified_agree"] for r in rows),
                     sum(r["verified_disagree"] for r in rows)).as_dict()


def cache_totals(rows: list[dict]) -> dict:
    """Return totals over namespace rows."""
    hits = sum(r["hits"] for r in rows)
    misses = sum(r["misses"] for r in rows)
    return {
        "namespaces": len(rows), "entries": sum(r["entries"] for r in rows), "hits": hits,
        "misses": misses, "hit_rate": round(hits / (hits + misses), 4) if hits + misses else 0.0,
        "saved_cost": sum((r["saved_cost"] for r in rows), Decimal(0)),
        **verified_precision(rows),
    }


def vector_search_status() -> dict:
    """Return where this process searches vectors: {"index": "redis" | "process" | "undecided",
    "detail": ...} (logged at start; /readyz shows it)."""
    from semcache.store import StoreUnavailable

    engine = get_engine()
    try:
        search = engine.search
    except StoreUnavailable as exc:
        return {"index": "undecided", "detail": f"the cache's Redis is unreachable: {exc}"}
    detail = search.detail
    if engine.search_fallback_reason:
        detail = f"{detail}: {engine.search_fallback_reason}"
    return {"index": search.kind, "detail": detail}
