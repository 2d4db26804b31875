"""The cache's writes and lookups over a store and this process's indexes (all synchronous).

`get_engine()` returns this process's `CacheEngine`, built from settings: a `RedisStore` when
SEMCACHE_REDIS_URL (default REDIS_URL) is set, else a `MemoryStore`. Its vector search is Redis'
query engine when the store's server has one (semcache/store/redis_search.py), else this
process's own indexes (semcache/registry.py); `CacheEngine.search` decides on first use. The async
seam the gateway calls is semcache/gateway.py; the commands and Celery tasks call the functions
at the bottom.
"""

import logging
import threading
import time
import uuid
from dataclasses import dataclass
from decimal import Decimal
from functools import cache

import numpy as np
from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

from semcache.decision import Verdict, decide
from semcache.namespaces import Scope
from semcache.registry import IndexRegistry
from semcache.store import BaseStore, Entry, MemoryStore, RedisStore
from semcache.store.redis_search import RedisVectorSearch, query_engine_missing
from semcache.verification import Precision, ThresholdMove, delta_bounds, threshold_step

logger = logging.getLogger(__name__)
CANDIDATES = 4  # neighbours the decision looks at
MAX_CACHED_DELTAS = 10_000  # namespaces whose feedback delta a process remembers at once
# An answer marked wrong tightens its namespace's threshold by this much, up to the ceiling.
FEEDBACK_STEP = 0.01
FEEDBACK_MAX_THRESHOLD = 0.99


def request_key(*, team_id: int | None, request_id: str) -> str:
    """Return the store key under which a request's entry is remembered for feedback: request
    ids are the client's (X-Request-ID), unique within a team only."""
    return f"{'' if team_id is None else team_id}:{request_id}"


@dataclass(frozen=True)
class Found:
    """A cache hit before it is shaped for the gateway."""

    entry: Entry
    kind: str                  # "exact" | "semantic"
    similarity: float | None
    score: float | None


class CacheEngine:
    """Lookups, stores, feedback, purge and expiry over one store and its indexes."""

    def __init__(self, store: BaseStore, *, index_options: dict | None = None,
                 min_sync_interval: float = 0.0, vector_index: str = "process"):
        self.store = store
        # This process's own indexes: the embedded default, and the fallback when the Redis
        # server has no query engine.
        self.registry = IndexRegistry(store, index_options=index_options,
                                      min_sync_interval=min_sync_interval)
        self._vector_index = vector_index  # "auto": Redis' query engine when it has one
        self._search: IndexRegistry | RedisVectorSearch | None = None
        self.search_fallback_reason = ""
        # Namespace -> (feedback threshold delta, time.monotonic() read): like the event log,
        # read from the store at most every min_sync_interval; this process's own feedback
        # updates it at once.
        self._min_sync_interval = min_sync_interval
        self._deltas: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    @property
    def search(self) -> "IndexRegistry | RedisVectorSearch":
        """The vector search in use, chosen on first use and logged: Redis' query engine when
        the store is Redis, SEMCACHE_VECTOR_INDEX is "auto" and the server has one, else this
        process's registry. Raises StoreUnavailable while Redis cannot be asked (no choice yet)."""
        if self._search is None:
            with self._lock:
                if self._search is None:
                    self._search = self._choose_search()
        return self._search

    def _choose_search(self) -> "IndexRegistry | RedisVectorSearch":
        if self._vector_index != "auto" or not isinstance(self.store, RedisStore):
            self.search_fallback_reason = (
                "SEMCACHE_VECTOR_INDEX=process" if isinstance(self.store, RedisStore)
                else "no Redis configured (the embedded store)")
            logger.info("semcache: vector search: %s (%s)", self.registry.detail,
                        self.search_fallback_reason)
            return self.registry
        missing = query_engine_missing(self.store)
        if missing:
            self.search_fallback_reason = missing
            logger.warning("semcache: vector search: %s, because %s", self.registry.detail,
                           missing)
            return self.registry
        search = RedisVectorSearch(self.store, **{
            key: value for key, value in (self.registry.index_options or {}).items()
            if key in ("connectivity", "expansion_add", "expansion_search", "dimensions")})
        self.store.announce = False  # no process follows the event stream any more
        logger.info("semcache: vector search: %s", search.detail)
        return search

    # --- lookups ------------------------------------------------------------------------
    def find_exact(self, scope: Scope) -> Found | None:
        """Return the entry stored under the scope's exact key (no embedding needed)."""
        entry = self.store.get_exact(scope.exact_key)
        if entry is None or entry.namespace != scope.namespace:
            return None
        return Found(entry=entry, kind="exact", similarity=None, score=None)

    def find_semantic(self, scope: Scope, vector: np.ndarray, *, threshold: float,
                      guards: bool = True, now: float | None = None) -> Found | None:
        """Return the best entry of the namespace that the decision (semcache.decision.decide)
        accepts for this query."""
        now = now or time.time()
        candidates = self.search.search(scope.namespace, vector, CANDIDATES, now=now)
        while candidates:
            verdict: Verdict | None = decide(
                scope.query_text, candidates, threshold=threshold, guards=guards)
            if verdict is None:
                return None
            entry = self.store.get(verdict.candidate.entry_id)
            if entry is not None:
                return Found(entry=entry, kind="semantic", similarity=verdict.similarity,
                             score=verdict.score)
            # Gone from the store (purged or expired by another process): forget it, try again.
            self.search.discard(scope.namespace, verdict.candidate.entry_id)
            candidates = [c for c in candidates if c.entry_id != verdict.candidate.entry_id]
        return None

    def threshold_for(self, namespace: str, base: float) -> float:
        """Return `base` raised by what feedback taught this namespace."""
        now = time.monotonic()
        cached = self._deltas.get(namespace)
        if cached is not None and now - cached[1] < self._min_sync_interval:
            delta = cached[0]
        else:
            delta = self.store.threshold_delta(namespace)
            if self._min_sync_interval > 0:
                if len(self._deltas) >= MAX_CACHED_DELTAS:
                    self._deltas.clear()
                self._deltas[namespace] = (delta, now)
        return _shifted(base, delta)

    def verification_record(self, namespace: str, *, agreed: bool, base: float,
                            team_id: int | None = None) -> ThresholdMove | None:
        """Count a verified hit's verdict in its namespace; move the namespace's threshold (over
        `base`, the team's) when its precision since the last move calls for it (see
        semcache.verification.threshold_step); return the move, or None."""
        counts = self.store.record_verification(namespace, agreed=agreed)
        window = Precision(counts["window_agree"], counts["window_disagree"])
        step = threshold_step(window)
        if not step:
            return None
        old = _shifted(base, self.store.threshold_delta(namespace))
        low, high = delta_bounds(base)
        delta = self.store.shift_threshold(namespace, step=step, low=low, high=high)
        with self._lock:
            self._deltas[namespace] = (delta, time.monotonic())
        new = _shifted(base, delta)
        return ThresholdMove(namespace=namespace, team_id=team_id, old=old, new=new,
                             window=window, target=settings.SEMCACHE_PRECISION_TARGET)

    # --- writes -------------------------------------------------------------------------
    def put(self, scope: Scope, *, vector: np.ndarray | None, message: dict, finish_reason: str,
            model: str, usage: dict, cost: Decimal, ttl_seconds: float,
            now: float | None = None, request_id: str | None = None) -> Entry:
        """Store an answer in the scope's namespace and return the entry; `request_id` (the
        request that produced it, of the scope's team) is remembered for feedback in the same
        store call."""
        now = now or time.time()
        search = self.search  # chosen before the first write: it decides what the write announces
        if vector is None:
            vector = np.zeros(384, dtype=np.float32)  # exact-only entry: never a neighbour
        entry = Entry(
            id=uuid.uuid4().hex, namespace=scope.namespace, tenant=scope.tenant,
            team_id=scope.team_id, model_scope=scope.model_scope, prompt=scope.query_text,
            exact_key=scope.exact_key, message=message, finish_reason=finish_reason,
            model=model, usage=dict(usage), cost=Decimal(str(cost)), created=now,
            expires=now + ttl_seconds, vector=np.asarray(vector, dtype=np.float32),
        )
        self.store.put(entry, namespace_info={
            "tenant": scope.tenant, "team_id": scope.team_id, "model_scope": scope.model_scope,
        }, request_id=request_key(team_id=scope.team_id, request_id=request_id)
            if request_id else None)
        search.add_local(entry.namespace, entry.id, entry.vector, entry.prompt, entry.expires)
        return entry

    def record(self, found: Found | None, namespace: str, *, team_id: int | None = None,
               request_id: str | None = None, now: float | None = None) -> None:
        """Count a hit (with its saving) or a miss, and remember which entry answered the
        request `request_id` of team `team_id`."""
        if found is None:
            self.store.record_miss(namespace)
            return
        self.store.record_hit(found.entry.id, namespace, similarity=found.similarity,
                              saved=found.entry.cost, now=now or time.time(),
                              request_id=request_key(team_id=team_id, request_id=request_id)
                              if request_id else None)

    def feedback(self, *, team_id: int | None, request_id: str, correct: bool) -> bool:
        """Apply a verdict on the answer of team `team_id`'s request `request_id`; return whether
        its entry was found. Another team's request of the same id is never reached."""
        entry_id = self.store.entry_for_request(request_key(team_id=team_id,
                                                            request_id=request_id))
        if entry_id is None:
            return False
        if correct:
            return True
        entry = self.store.get(entry_id)
        self.store.delete([entry_id])
        if entry is not None:
            self.search.discard(entry.namespace, entry_id)
            delta = self.store.tighten(entry.namespace, step=FEEDBACK_STEP,
                                       ceiling=1.0)
            self._deltas[entry.namespace] = (delta, time.monotonic())
        return True

    def purge(self, *, tenant: str | None = None, model_scope: str | None = None,
              older_than: float | None = None, dry_run: bool = False,
              now: float | None = None) -> int:
        """Delete the entries matching the filters (all of them without filters)."""
        now = now or time.time()
        count = 0
        for namespace, info in self.store.namespaces().items():
            if tenant is not None and info.get("tenant") != tenant:
                continue
            if model_scope is not None and info.get("model_scope") != model_scope.lower():
                continue
            if older_than is not None:
                ids = self.store.due(namespace, now=now, older_than=older_than)
            else:
                ids = [i for i, _ in self.store.members(namespace, now=0.0)]
            if dry_run:
                count += len(ids)
                continue
            for start in range(0, len(ids), 1000):
                count += self.store.delete(ids[start:start + 1000], namespace=namespace)
            self.store.forget_namespace(namespace)
        if not dry_run:
            self.search.sync()
            if tenant is None and model_scope is None and older_than is None:
                count += self.store.clear_values()  # everything: cached embeddings too
        return count

    def expire(self, *, now: float | None = None) -> int:
        """Drop expired entries from every namespace's index set; return how many."""
        now = now or time.time()
        count = 0
        for namespace in self.store.namespaces():
            ids = self.store.due(namespace, now=now)
            for start in range(0, len(ids), 1000):
                count += self.store.delete(ids[start:start + 1000], namespace=namespace)
            self.store.forget_namespace(namespace)
        self.search.sync()
        self.search.sweep(now)
        return count


def _shifted(base: float, delta: float) -> float:
    """Return the threshold `base` moved by a namespace's delta: up at most to
    FEEDBACK_MAX_THRESHOLD, down (verified hits only lower it) at most to SEMCACHE_THRESHOLD_MIN,
    never past `base` on the other side of either bound."""
    if delta > 0:
        return max(base, min(base + delta, FEEDBACK_MAX_THRESHOLD))
    if delta < 0:
        return min(base, max(base + delta, settings.SEMCACHE_THRESHOLD_MIN))
    return base


def _build_engine() -> CacheEngine:
    if settings.SEMCACHE_REDIS_URL:
        store = RedisStore(
            url=settings.SEMCACHE_REDIS_URL, prefix=settings.SEMCACHE_KEY_PREFIX,
            timeout=settings.SEMCACHE_REDIS_TIMEOUT_SECONDS,
            max_events=settings.SEMCACHE_EVENT_STREAM_MAXLEN,
            miss_flush_interval=settings.SEMCACHE_SYNC_INTERVAL_MS / 1000,
        )
    else:
        store = MemoryStore(max_events=settings.SEMCACHE_EVENT_STREAM_MAXLEN)
    return CacheEngine(store, min_sync_interval=settings.SEMCACHE_SYNC_INTERVAL_MS / 1000,
                       vector_index=settings.SEMCACHE_VECTOR_INDEX)


@cache
def get_engine() -> CacheEngine:
    """Return this process's cache engine (built from settings on first use)."""
    return _build_engine()


# Verified hits' settings: read where they are used, nothing of the engine is built from them.
_POLICY_SETTINGS = ("SEMCACHE_VERIFY_", "SEMCACHE_PRECISION_", "SEMCACHE_THRESHOLD_")


@receiver(setting_changed)
def _reset_engine(*, setting, **kwargs):
    if setting.startswith(_POLICY_SETTINGS):
        return  # read at each use; the engine (and its store) stays
    if setting.startswith("SEMCACHE_") or setting in ("CACHE_TTL_HOURS", "REDIS_URL"):
        get_engine.cache_clear()


# --- entry points for commands and tasks ----------------------------------------------------
def cache_purge(*, tenant: str | None = None, model_scope: str | None = None,
                older_than_seconds: float | None = None, dry_run: bool = False) -> int:
    """Purge entries (see `manage.py purge_cache`); return how many (would be) deleted."""
    older_than = time.time() - older_than_seconds if older_than_seconds is not None else None
    return get_engine().purge(tenant=tenant, model_scope=model_scope, older_than=older_than,
                              dry_run=dry_run)


def cache_expire() -> int:
    """Remove expired entries from the namespaces' member sets and every index (Celery beat)."""
    return get_engine().expire()


def cache_store_payload(payload: dict) -> str:
    """Store an answer described by a JSON payload (the Celery write-behind); return its id."""
    scope = Scope(**payload["scope"])
    vector = payload.get("vector")
    fields = dict(payload["fields"])
    fields["cost"] = Decimal(fields["cost"])
    engine = get_engine()
    entry = engine.put(scope, vector=None if vector is None else np.asarray(vector, np.float32),
                       ttl_seconds=payload["ttl_seconds"],
                       request_id=payload.get("request_id") or None, **fields)
    return entry.id


def cache_warm(items: list[dict], *, batch_size: int = 64, progress=None) -> int:
    """Store prepared answers (see `manage.py warm_cache`); return how many were stored.

    Each item: team_id, messages, model, answer (text or message) and optionally params, usage,
    cost, finish_reason, ttl_hours, shared.
    """
    from django.conf import settings as conf

    from semcache.embedder import get_embedder
    from semcache.namespaces import build_scope

    engine = get_engine()
    stored = 0
    for start in range(0, len(items), batch_size):
        chunk = items[start:start + batch_size]
        scopes = [
            build_scope(team_id=item["team_id"], messages=item["messages"],
                        requested_model=item.get("model") or "auto",
                        answer_params=item.get("params") or {}, shared=bool(item.get("shared")))
            for item in chunk
        ]
        texts = [s.query_text for s in scopes if s.semantic]
        vectors = iter(get_embedder().embed_sync(texts)) if texts else iter(())
        for item, scope in zip(chunk, scopes, strict=True):
            answer = item["answer"]
            message = answer if isinstance(answer, dict) else {"role": "assistant",
                                                               "content": str(answer)}
            ttl_hours = item.get("ttl_hours") or conf.CACHE_TTL_HOURS
            engine.put(scope, vector=next(vectors) if scope.semantic else None, message=message,
                       finish_reason=item.get("finish_reason", "stop"),
                       model=item.get("model_name") or item.get("model") or "auto",
                       usage=item.get("usage") or {}, cost=Decimal(str(item.get("cost", 0))),
                       ttl_seconds=float(ttl_hours) * 3600)
            stored += 1
        if progress:
            progress(len(chunk))
    return stored
