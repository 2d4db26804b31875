"""Writes for routing: default profiles, price sync, labeled examples, observed latency."""

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import timedelta

import numpy as np
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from routing.catalog import catalog_entry_for, entry_changes
from routing.defaults import all_default_profiles
from routing.models import ModelProfile, RoutingExample
from routing.selectors import invalidate_predictor, invalidate_snapshot

# `embed(texts)` returns their (n, d) embeddings, or (embeddings, {layer: (n, d) pooled states
# of that intermediate layer}) from the same pass (`embedder_embed`).
Embed = Callable[[list[str]], np.ndarray | tuple[np.ndarray, dict[int, np.ndarray]]]


def embedder_embed(embedder) -> Embed:
    """Return an `embed` for the example services from the semantic cache's embedder: its
    embeddings and, when it has them, its pooled intermediate layers from the same pass."""
    if not hasattr(embedder, "embed_layers_sync"):
        return embedder.embed_sync

    def embed(texts: list[str]) -> tuple[np.ndarray, dict[int, np.ndarray]]:
        vectors, states = embedder.embed_layers_sync(texts)
        return vectors, {layer: states[:, i] for i, layer in enumerate(embedder.layers)}

    return embed


def _embedded(embed: Embed, texts: list[str]) -> tuple[np.ndarray, dict[int, np.ndarray]]:
    out = embed(texts)
    vectors, layers = out if isinstance(out, tuple) else (out, {})
    return (np.asarray(vectors, dtype="<f4"),
            {layer: np.asarray(states, dtype="<f4") for layer, states in layers.items()})


def _layer_fields(layers: dict[int, np.ndarray], row: int) -> dict:
    """Return RoutingExample's layer fields for row `row` of `layers` (empty without layers)."""
    names = sorted(layers)
    return {"layer_embeddings": b"".join(layers[x][row].tobytes() for x in names),
            "layers": ",".join(str(x) for x in names)}


# --- Default profiles -------------------------------------------------------------------------
@transaction.atomic
def profiles_load_defaults(*, update: bool = False) -> dict[str, str]:
    """Create the default profiles that are missing; with `update`, reset existing ones to the
    defaults too. Return {name: "created" | "updated" | "unchanged"}. Idempotent."""
    result: dict[str, str] = {}
    for fields in all_default_profiles():
        name = fields.pop("name")
        profile = ModelProfile.objects.filter(name=name).first()
        if profile is None:
            profile = ModelProfile(name=name, **fields)
            profile.full_clean()
            profile.save()
            result[name] = "created"
            continue
        changed = [k for k, v in fields.items() if getattr(profile, k) != v]
        if update and changed:
            for key in changed:
                setattr(profile, key, fields[key])
            profile.full_clean()
            profile.save()
            result[name] = "updated"
        else:
            result[name] = "unchanged"
    invalidate_snapshot()
    return result


# --- Price catalog ----------------------------------------------------------------------------
@dataclass
class PriceSyncReport:
    """What a price sync changed (or would change), and which profiles the catalog lacks."""

    changes: dict[str, dict[str, tuple]] = field(default_factory=dict)  # name → field → (old, new)
    matched: dict[str, str] = field(default_factory=dict)  # name → catalog key
    not_in_catalog: list[str] = field(default_factory=list)  # kept as they are, never dropped


@transaction.atomic
def profiles_sync_prices(*, catalog: dict[str, dict], dry_run: bool = False) -> PriceSyncReport:
    """Update every profile's prices and limits from `catalog`; never delete a profile."""
    report = PriceSyncReport()
    for profile in ModelProfile.objects.select_for_update().order_by("name"):
        found = catalog_entry_for(profile, catalog)
        if found is None:
            report.not_in_catalog.append(profile.name)
            continue
        key, entry = found
        report.matched[profile.name] = key
        changes = entry_changes(profile, entry)
        if not changes:
            continue
        report.changes[profile.name] = changes
        if not dry_run:
            for name, (_, new) in changes.items():
                setattr(profile, name, new)
            profile.full_clean()
            profile.save()
    if not dry_run:
        invalidate_snapshot()
    return report


# --- Labeled examples -------------------------------------------------------------------------
def prompt_hash(prompt: str) -> str:
    return hashlib.sha256(prompt.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True)
class ExampleLabel:
    """One label to store: a prompt and how well a model (or a tier) did on it."""

    prompt: str
    score: float
    model_name: str = ""
    tier: str = ""
    source: str = ""
    request_id: str = ""


def routing_examples_import(*, labels: Iterable[ExampleLabel], embed: Embed,
                            batch_size: int = 256) -> int:
    """Embed and store labels, skipping ones already stored; return how many were added."""
    added = 0
    batch: list[ExampleLabel] = []
    for label in labels:
        batch.append(label)
        if len(batch) >= batch_size:
            added += _import_batch(batch, embed)
            batch = []
    if batch:
        added += _import_batch(batch, embed)
    invalidate_predictor()
    return added


def _import_batch(batch: list[ExampleLabel], embed: Embed) -> int:
    prompts = sorted({label.prompt for label in batch})
    vectors, layers = _embedded(embed, prompts)
    row_of = {prompt: row for row, prompt in enumerate(prompts)}
    rows = []
    for label in batch:
        row = row_of[label.prompt]
        example = RoutingExample(
            prompt=label.prompt, prompt_hash=prompt_hash(label.prompt),
            embedding=vectors[row].tobytes(), **_layer_fields(layers, row),
            model_name=label.model_name, tier=label.tier, score=label.score,
            source=label.source, request_id=label.request_id)
        example.full_clean(exclude=["embedding", "layer_embeddings"],
                           validate_constraints=False)
        rows.append(example)
    with transaction.atomic():
        before = RoutingExample.objects.count()
        RoutingExample.objects.bulk_create(rows, ignore_conflicts=True)
        return RoutingExample.objects.count() - before


def routing_example_record_feedback(*, prompt: str, model_name: str, score: float,
                                    request_id: str = "", embed: Embed) -> RoutingExample:
    """Store one piece of feedback (how well `model_name` answered `prompt`) as a label."""
    vectors, layers = _embedded(embed, [prompt])
    example, _ = RoutingExample.objects.update_or_create(
        prompt_hash=prompt_hash(prompt), model_name=model_name, tier="", source="feedback",
        defaults={"prompt": prompt, "embedding": vectors[0].tobytes(),
                  **_layer_fields(layers, 0), "score": score, "request_id": request_id},
    )
    invalidate_predictor()
    return example


# --- Observed latency -------------------------------------------------------------------------
def profiles_refresh_observed(*, now=None) -> dict[str, dict]:
    """Recompute each profile's observed p50/p95 latency, TTFT and error rate from the ledger.

    Reads at most ROUTING_OBSERVED_MAX_SAMPLES recent rows per model within the window, so the
    cost stays bounded however large the ledger grows.
    """
    from budgets.models import UsageRecord

    now = now or timezone.now()
    since = now - timedelta(hours=settings.ROUTING_OBSERVED_WINDOW_HOURS)
    limit = settings.ROUTING_OBSERVED_MAX_SAMPLES
    result: dict[str, dict] = {}
    for profile in ModelProfile.objects.all():
        rows = list(UsageRecord.objects.filter(served_model=profile.name, created_at__gte=since)
                    .exclude(cache_status__in=["hit_exact", "hit_semantic"])
                    .order_by("-created_at")
                    .values_list("status", "upstream_latency_ms", "latency_ms", "ttft_ms")[:limit])
        if not rows:
            continue
        latencies = [u or t for s, u, t, _ in rows if s == "ok" and (u or t)]
        ttfts = [f for s, _, _, f in rows if s == "ok" and f]
        errors = sum(1 for s, *_ in rows if s in ("upstream_error", "timeout"))
        observed = {
            "observed_latency_p50_ms": _percentile(latencies, 50),
            "observed_latency_p95_ms": _percentile(latencies, 95),
            "observed_ttft_p50_ms": _percentile(ttfts, 50),
            "observed_error_rate": round(errors / len(rows), 4),
            "observed_samples": len(rows),
            "observed_at": now,
        }
        ModelProfile.objects.filter(pk=profile.pk).update(**observed)
        result[profile.name] = observed
    invalidate_snapshot()
    return result


def _percentile(values: list[int], q: float) -> int | None:
    return int(np.percentile(values, q)) if values else None
