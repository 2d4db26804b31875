"""In-process store: the embedded default when no Redis is configured (one process)."""

import threading
import time
from collections import OrderedDict
from decimal import Decimal

from semcache.store.base import REQUEST_TTL_SECONDS, BaseStore, Entry, Event

# Values (`put_values`) one process keeps at most; the least recently used go first.
MAX_VALUES = 100_000


class MemoryStore(BaseStore):
    """In-process store: the embedded default when no Redis is configured (one process)."""

    def __init__(self, *, max_events: int = 200_000, max_values: int = MAX_VALUES, **_):
        self._lock = threading.RLock()
        self._entries: dict[str, Entry] = {}
        self._exact: dict[str, str] = {}
        self._members: dict[str, dict[str, float]] = {}
        self._namespaces: dict[str, dict] = {}
        self._events: list[Event] = []
        self._event_base = 0  # sequence number of self._events[0]
        self._max_events = max_events
        self._stats: dict[str, dict] = {}
        self._requests: dict[str, tuple[str, float]] = {}
        self._deltas: dict[str, float] = {}
        self._values: OrderedDict[str, tuple[bytes, float]] = OrderedDict()
        self._max_values = max_values

    def _emit(self, **fields) -> None:
        seq = self._event_base + len(self._events)
        self._events.append(Event(cursor=str(seq + 1), **fields))
        if len(self._events) > self._max_events:
            drop = len(self._events) - self._max_events
            del self._events[:drop]
            self._event_base += drop

    def put(self, entry, *, namespace_info, request_id=None):
        with self._lock:
            old = self._exact.get(entry.exact_key)
            if old and old != entry.id:
                self.delete([old])
            self._entries[entry.id] = entry
            self._exact[entry.exact_key] = entry.id
            self._members.setdefault(entry.namespace, {})[entry.id] = entry.expires
            self._namespaces.setdefault(entry.namespace, dict(namespace_info))
            self._emit(op="add", namespace=entry.namespace, entry_id=entry.id,
                       vector=entry.vector, prompt=entry.prompt, expires=entry.expires)
        if request_id:
            self.remember_request(request_id, entry.id)

    def _live(self, entry_id):
        entry = self._entries.get(entry_id)
        if entry is None or entry.expires <= time.time():
            return None
        return entry

    def get(self, entry_id):
        with self._lock:
            entry = self._live(entry_id)
            if entry is None:
                return None
            return Entry(**{**entry.__dict__, "vector": None})

    def get_exact(self, exact_key):
        with self._lock:
            entry_id = self._exact.get(exact_key)
            return self.get(entry_id) if entry_id else None

    def delete(self, entry_ids, *, namespace=None):
        count = 0
        with self._lock:
            for entry_id in entry_ids:
                entry = self._entries.pop(entry_id, None)
                if entry is None:
                    continue
                count += 1
                if self._exact.get(entry.exact_key) == entry_id:
                    del self._exact[entry.exact_key]
                self._members.get(entry.namespace, {}).pop(entry_id, None)
                self._stats.get(entry.namespace, {}).get("top", {}).pop(entry_id, None)
                self._emit(op="del", namespace=entry.namespace, entry_id=entry_id)
        return count

    def members(self, namespace, *, now):
        with self._lock:
            return [(i, e) for i, e in self._members.get(namespace, {}).items() if e > now]

    def due(self, namespace, *, now, older_than=None):
        with self._lock:
            ids = [i for i, e in self._members.get(namespace, {}).items() if e <= now]
            if older_than is not None:
                ids += [
                    i for i in self._members.get(namespace, {})
                    if i in self._entries and self._entries[i].created < older_than
                    and i not in ids
                ]
            return ids

    def vectors(self, entry_ids):
        with self._lock:
            out = []
            for entry_id in entry_ids:
                entry = self._live(entry_id)
                out.append(None if entry is None else (entry.vector, entry.prompt, entry.expires))
            return out

    def events(self, cursor, *, limit=1000):
        with self._lock:
            end = self._event_base + len(self._events)
            if cursor is None:
                return str(end), []
            seq = int(cursor)
            if seq < self._event_base:
                return str(end), [Event(cursor=str(end), op="reset")]
            batch = self._events[seq - self._event_base: seq - self._event_base + limit]
            return (batch[-1].cursor if batch else cursor), batch

    def namespaces(self):
        with self._lock:
            return {ns: dict(info) for ns, info in self._namespaces.items()}

    def forget_namespace(self, namespace):
        with self._lock:
            if not self._members.get(namespace):
                self._members.pop(namespace, None)
                self._namespaces.pop(namespace, None)
                self._stats.pop(namespace, None)

    def _ns_stats(self, namespace):
        return self._stats.setdefault(
            namespace, {"hits": 0, "misses": 0, "similarity_sum": 0.0, "semantic_hits": 0,
                        "saved_cost": Decimal(0), "top": {}, "verified_agree": 0,
                        "verified_disagree": 0, "window_agree": 0, "window_disagree": 0},
        )

    def record_hit(self, entry_id, namespace, *, similarity, saved, now, request_id=None):
        if request_id:
            self.remember_request(request_id, entry_id)
        with self._lock:
            entry = self._entries.get(entry_id)
            if entry is not None:
                entry.hits += 1
                entry.last_hit = now
            stats = self._ns_stats(namespace)
            stats["hits"] += 1
            if similarity is not None:
                stats["semantic_hits"] += 1
                stats["similarity_sum"] += similarity
            stats["saved_cost"] += Decimal(saved)
            stats["top"][entry_id] = stats["top"].get(entry_id, 0) + 1

    def record_miss(self, namespace):
        with self._lock:
            self._ns_stats(namespace)["misses"] += 1

    def stats(self, namespace, *, top=5):
        with self._lock:
            stats = dict(self._ns_stats(namespace))
            ranked = sorted(stats.pop("top").items(), key=lambda kv: -kv[1])[:top]
            stats["top"] = ranked
            return stats

    def remember_request(self, request_id, entry_id):
        with self._lock:
            self._requests[request_id] = (entry_id, time.time() + REQUEST_TTL_SECONDS)
            if len(self._requests) > 100_000:  # bounded: drop the oldest
                for key in list(self._requests)[:10_000]:
                    del self._requests[key]

    def entry_for_request(self, request_id):
        with self._lock:
            found = self._requests.get(request_id)
            return found[0] if found and found[1] > time.time() else None

    def threshold_delta(self, namespace):
        return self._deltas.get(namespace, 0.0)

    def tighten(self, namespace, *, step, ceiling):
        with self._lock:
            self._deltas[namespace] = min(self._deltas.get(namespace, 0.0) + step, ceiling)
            return self._deltas[namespace]

    def record_verification(self, namespace, *, agreed):
        with self._lock:
            stats = self._ns_stats(namespace)
            side = "agree" if agreed else "disagree"
            stats[f"verified_{side}"] += 1
            stats[f"window_{side}"] += 1
            return {"agree": stats["verified_agree"], "disagree": stats["verified_disagree"],
                    "window_agree": stats["window_agree"],
                    "window_disagree": stats["window_disagree"]}

    def shift_threshold(self, namespace, *, step, low, high):
        with self._lock:
            delta = min(max(self._deltas.get(namespace, 0.0) + step, low), high)
            self._deltas[namespace] = delta
            stats = self._ns_stats(namespace)
            stats["window_agree"] = stats["window_disagree"] = 0
            return delta

    def get_values(self, keys):
        now = time.time()
        out = []
        with self._lock:
            for key in keys:
                held = self._values.get(key)
                if held is not None and held[1] <= now:
                    del self._values[key]
                    held = None
                elif held is not None:
                    self._values.move_to_end(key)
                out.append(None if held is None else held[0])
        return out

    def put_values(self, values, *, ttl_seconds):
        expires = time.time() + ttl_seconds
        with self._lock:
            for key, value in values.items():
                self._values[key] = (bytes(value), expires)
                self._values.move_to_end(key)
            while len(self._values) > self._max_values:
                self._values.popitem(last=False)

    def clear_values(self):
        with self._lock:
            count = len(self._values)
            self._values.clear()
            return count

    def ping(self):
        return None

    def flush(self):
        with self._lock:
            for entry_id in list(self._entries):
                self.delete([entry_id])
            self._namespaces.clear()
            self._stats.clear()
            self._requests.clear()
            self._deltas.clear()
            self._values.clear()
