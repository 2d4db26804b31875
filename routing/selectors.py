"""Reads for routing, served from short in-process snapshots (hot path: no query per request)."""

import asyncio
import time

import numpy as np
from django.db.models import Count, Max, Q
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from llmops.background import spawn
from llmops.db import run_db
from routing.models import ModelProfile, RouterAlias, RoutingExample
from routing.predictor import MODEL, TIER, KnnPredictor, RoutingPredictor

# Seconds a process keeps its fitted predictor before checking the RoutingExample table again,
# and the most examples it holds (most recent first).
EXAMPLES_REFRESH_SECONDS = 60.0
EXAMPLES_MAX = 200_000
# Profiles change rarely (admin edits, price sync); a few seconds of staleness across processes is
# acceptable, and saves in this process invalidate at once.
SNAPSHOT_SECONDS = 5.0
_snapshot: tuple[float, dict[str, ModelProfile]] | None = None


def _load() -> dict[str, ModelProfile]:
    return {p.name: p for p in ModelProfile.objects.enabled()}


async def _enabled_by_name() -> dict[str, ModelProfile]:
    global _snapshot
    now = time.monotonic()
    if _snapshot is None or now - _snapshot[0] > SNAPSHOT_SECONDS:
        _snapshot = (now, await run_db(_load))
    return _snapshot[1]


async def profiles_enabled() -> list[ModelProfile]:
    """Return every enabled profile."""
    return list((await _enabled_by_name()).values())


async def profile_get_enabled(*, name: str) -> ModelProfile | None:
    """Return the enabled profile called `name`, or None."""
    return (await _enabled_by_name()).get(name)


def profiles_all() -> list[ModelProfile]:
    """Return every profile, enabled or not (sync; commands and admin)."""
    return list(ModelProfile.objects.all())


def invalidate_snapshot() -> None:
    global _snapshot, _aliases
    _snapshot = None
    _aliases = None


@receiver([post_save, post_delete], sender=ModelProfile)
def _profile_changed(**kwargs) -> None:
    invalidate_snapshot()


# --- Router aliases ---------------------------------------------------------------------------
_aliases: tuple[float, dict[tuple[int | None, str], RouterAlias]] | None = None


def _load_aliases() -> dict[tuple[int | None, str], RouterAlias]:
    return {(a.team_id, a.name): a for a in RouterAlias.objects.filter(enabled=True)}


async def alias_get(*, name: str, team_id: int | None) -> RouterAlias | None:
    """Return the enabled router alias `name` for the team (a team's own beats a global one)."""
    global _aliases
    now = time.monotonic()
    if _aliases is None or now - _aliases[0] > SNAPSHOT_SECONDS:
        _aliases = (now, await run_db(_load_aliases))
    return _aliases[1].get((team_id, name)) or _aliases[1].get((None, name))


@receiver([post_save, post_delete], sender=RouterAlias)
def _alias_changed(**kwargs) -> None:
    global _aliases
    _aliases = None


# --- Learned predictor state ------------------------------------------------------------------
# (checked at, table fingerprint, predictor): refits happen only when the table changed.
_predictor: tuple[float, tuple, RoutingPredictor] | None = None


def example_vector(example: RoutingExample) -> np.ndarray:
    """Return an example's stored embedding as a float32 vector."""
    return np.frombuffer(bytes(example.embedding), dtype="<f4")


def stored_layers(blob: bytes, names: str, wanted: tuple[int, ...]) -> dict[int, np.ndarray] | None:
    """Return {layer: float32 vector} for the `wanted` layers of an example's stored
    `layer_embeddings` / `layers`, or None when it lacks any of them."""
    stored = [int(x) for x in names.split(",") if x] if names else []
    if not wanted or not set(wanted) <= set(stored):
        return None
    states = np.frombuffer(bytes(blob), dtype="<f4").reshape(len(stored), -1)
    return {x: states[stored.index(x)] for x in wanted}


def routing_examples_fingerprint() -> tuple:
    """Return a cheap summary that changes when examples are added or removed."""
    summary = RoutingExample.objects.aggregate(count=Count("id"), last=Max("id"))
    return summary["count"], summary["last"]


def routing_examples_load(*, limit: int | None = None) -> RoutingPredictor:
    """Build the predictor from the most recent RoutingExample rows (sync; CPU-heavy refit).

    Targets with at least `learned.MIN_EXAMPLES` labels (both outcomes present) get the learned
    model on their most recent `learned.MAX_TRAIN` labels; every target also gets the kNN vote,
    used when it has too few labels for the learned model. The shipped default models
    (routing.default_predictor, fitted once per process) give the priors.
    """
    from routing import learned as config
    from routing.default_predictor import default_models
    from routing.learned import OutcomeModel

    limit = limit or EXAMPLES_MAX
    wanted = tuple(config.LAYERS)
    rows = list(RoutingExample.objects.filter(~Q(embedding=b""))
                .order_by("-id")
                .values_list("model_name", "tier", "score", "embedding", "prompt",
                             "layer_embeddings", "layers")[:limit])
    knn = KnnPredictor()
    defaults = default_models()
    if not rows:
        return RoutingPredictor(knn, defaults=defaults)
    targets = [(MODEL, m) if m else (TIER, t) for m, t, *_ in rows]
    vectors = np.stack([np.frombuffer(bytes(row[3]), dtype="<f4") for row in rows])
    scores = np.array([row[2] for row in rows], dtype=np.float64)
    knn.fit(targets, vectors, scores)
    learned = {}
    for target in sorted(set(targets)):
        index = [i for i, t in enumerate(targets) if t == target]
        index = index[:config.MAX_TRAIN]
        if not OutcomeModel.can_fit(scores[index], min_examples=config.MIN_EXAMPLES):
            continue
        # Layer members only when every training example has the layers (older rows, made
        # before the embedder returned them, have none): else the model is the final-only one.
        states = [stored_layers(rows[i][5], rows[i][6], wanted) for i in index]
        layers = None
        if wanted and all(s is not None for s in states):
            layers = {x: np.stack([s[x] for s in states]) for x in wanted}
        learned[target] = OutcomeModel(
            k=config.K, layers=wanted, temperature=config.TEMPERATURE, formats=config.FORMATS,
            min_format_examples=config.MIN_EXAMPLES,
        ).fit([rows[i][4] for i in index], vectors[index], scores[index], layers=layers)
    return RoutingPredictor(knn, learned, defaults)


def _refresh_predictor(current: tuple | None) -> tuple[tuple, RoutingPredictor | None]:
    fingerprint = routing_examples_fingerprint()
    if current is not None and current[1] == fingerprint:
        return fingerprint, None
    return fingerprint, routing_examples_load()


_refresh_task: asyncio.Task | None = None
_EMPTY = RoutingPredictor(KnnPredictor())


async def _refresh() -> None:
    global _predictor
    from routing.default_predictor import default_models

    # The shipped default is fitted once per process (seconds of embedding): on a thread of its
    # own, not one of the database pool's.
    await asyncio.to_thread(default_models)
    current = _predictor
    fingerprint, rebuilt = await run_db(_refresh_predictor, current)
    predictor = rebuilt if rebuilt is not None else (current[2] if current else _EMPTY)
    _predictor = (time.monotonic(), fingerprint, predictor)


async def routing_predictor(*, wait: bool = False) -> RoutingPredictor:
    """Return this process's predictor. Every few seconds the table is checked (one indexed
    aggregate) and, when it changed, the models are refitted in the background: requests keep
    the previous predictor (priors at first) instead of waiting for a refit. `wait` awaits it."""
    global _refresh_task
    due = _predictor is None or (
        time.monotonic() - _predictor[0] > EXAMPLES_REFRESH_SECONDS)
    if due and (_refresh_task is None or _refresh_task.done()):
        # Held by the background group too: `invalidate_predictor` may drop this reference
        # while the refit runs.
        _refresh_task = spawn(_refresh())
    if wait and _refresh_task is not None and not _refresh_task.done():
        await asyncio.shield(_refresh_task)
    return _predictor[2] if _predictor is not None else _EMPTY


def invalidate_predictor() -> None:
    global _predictor, _refresh_task
    _predictor = None
    _refresh_task = None


@receiver([post_save, post_delete], sender=RoutingExample)
def _example_changed(**kwargs) -> None:
    invalidate_predictor()
