"""This process's vector indexes, one per namespace, kept in step with the store incrementally.

A namespace's index is loaded from the store the first time this process touches it (its sorted
set of live members, then their vectors in pipelined batches). After that every change reaches it
through the store's event log: `sync()` reads only the events since the last cursor (an XREAD in
Redis), so new, purged and expired entries from any process show up without scanning. Expired
entries are filtered at search time and dropped locally by a periodic sweep.

Under load, lookups come faster than other processes' changes matter: `index_for` reads the log
at most every `min_sync_interval` seconds (SEMCACHE_SYNC_INTERVAL_MS), so a busy process pays
one event round trip per interval, not one per lookup. This process's own stores reach its
indexes at once (`add_local`), so it always reads its own writes; another process's entry shows
up here within the interval.
"""

import threading
import time
from collections import OrderedDict

from semcache.index import NamespaceIndex
from semcache.store import BaseStore

SWEEP_INTERVAL_SECONDS = 30.0
# Namespaces held in memory at once; the least recently used is dropped (and reloaded from the
# store if used again). Multi-turn conversations each make a namespace, so this must be bounded.
MAX_LOADED_NAMESPACES = 20_000


class IndexRegistry:
    """Per-process map namespace -> NamespaceIndex, synchronized from a store's events."""

    kind = "process"
    detail = "in-process index (each process holds the namespaces it uses)"

    def __init__(self, store: BaseStore, *, index_options: dict | None = None,
                 max_loaded: int = MAX_LOADED_NAMESPACES, min_sync_interval: float = 0.0):
        self.store = store
        self.min_sync_interval = min_sync_interval
        self._synced_at = float("-inf")  # time.monotonic() of the last read of the log
        self.index_options = index_options or {}
        self.max_loaded = max_loaded
        self._indexes: OrderedDict[str, NamespaceIndex] = OrderedDict()
        self._cursor: str | None = None
        self._lock = threading.RLock()
        self._last_sweep = time.time()

    def sync(self) -> int:
        """Apply the store's events since the last call; return how many were applied."""
        with self._lock:
            self._synced_at = time.monotonic()
            if self._cursor is None:
                # Start at the end of the log: namespaces are loaded whole when first used.
                self._cursor, _ = self.store.events(None)
                return 0
            applied = 0
            while True:
                self._cursor, events = self.store.events(self._cursor, limit=1000)
                for event in events:
                    self._apply(event)
                applied += len(events)
                if len(events) < 1000:
                    break
            now = time.time()
            if now - self._last_sweep > SWEEP_INTERVAL_SECONDS:
                self._last_sweep = now
                self.sweep(now)
            return applied

    def _apply(self, event) -> None:
        if event.op == "reset":
            self._indexes.clear()
            return
        index = self._indexes.get(event.namespace)
        if index is None:
            return  # not loaded here: it will be read whole when first used
        if event.op == "add":
            index.add(event.entry_id, event.vector, event.prompt, event.expires)
        elif event.op == "del":
            index.remove(event.entry_id)

    def index_for(self, namespace: str, *, now: float | None = None) -> NamespaceIndex:
        """Return the namespace's index, synced with the store (loading it if new here)."""
        with self._lock:
            if time.monotonic() - self._synced_at >= self.min_sync_interval:
                self.sync()
            index = self._indexes.get(namespace)
            if index is None:
                index = self._load(namespace, now or time.time())
                self._indexes[namespace] = index
                while len(self._indexes) > self.max_loaded:
                    self._indexes.popitem(last=False)
            else:
                self._indexes.move_to_end(namespace)
            return index

    def search(self, namespace: str, vector, k: int, *, now: float | None = None) -> list:
        """Return up to `k` live entries of the namespace nearest to `vector` (Candidates, most
        similar first); semcache/store/redis_search.py is the same search inside Redis."""
        now = time.time() if now is None else now
        return self.index_for(namespace, now=now).search(vector, k, now=now)

    def _load(self, namespace: str, now: float) -> NamespaceIndex:
        import numpy as np

        index = NamespaceIndex(**self.index_options)
        members = self.store.members(namespace, now=now)
        for start in range(0, len(members), 10_000):
            chunk = members[start:start + 10_000]
            rows = self.store.vectors([entry_id for entry_id, _ in chunk])
            live = [(entry_id, row) for (entry_id, _), row in zip(chunk, rows, strict=True) if row]
            if live:
                index.add_many(
                    [entry_id for entry_id, _ in live],
                    np.stack([row[0] for _, row in live]),
                    [row[1] for _, row in live],
                    [row[2] for _, row in live],
                )
        return index

    def add_local(self, namespace: str, entry_id: str, vector, prompt: str,
                  expires: float) -> None:
        """Apply an entry this process just stored to its loaded index (its event, read later,
        only refreshes it)."""
        with self._lock:
            index = self._indexes.get(namespace)
            if index is not None:
                index.add(entry_id, vector, prompt, expires)

    def discard(self, namespace: str, entry_id: str) -> None:
        """Drop an entry found gone from the store (purged or expired elsewhere)."""
        with self._lock:
            index = self._indexes.get(namespace)
            if index is not None:
                index.remove(entry_id)

    def sweep(self, now: float) -> int:
        """Remove expired entries from every loaded index; return how many."""
        removed = 0
        with self._lock:
            for index in self._indexes.values():
                for entry_id in index.expired(now):
                    removed += index.remove(entry_id)
        return removed

    def loaded(self) -> dict[str, int]:
        """Return the loaded namespaces and their sizes."""
        with self._lock:
            return {ns: len(index) for ns, index in self._indexes.items()}

    def clear(self) -> None:
        with self._lock:
            self._indexes.clear()
            self._cursor = None
