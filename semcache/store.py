"""Where cache entries live: Redis (shared by every gateway process) or in-process memory.

Both stores implement `BaseStore`; everything above them (index, decision, services) is the same
code. Nothing here scans: entries are found by id, exact key, or a namespace's sorted set (scored
by expiry time), and every change is appended to an event log (a Redis stream) that each process
reads incrementally to keep its vector index in step (semcache/registry.py).

Redis layout (prefix `SEMCACHE_KEY_PREFIX`, default "semcache"):
  {p}:e:{id}       hash   the entry (prompt, vector, answer, model, usage, cost, hits, ...) + TTL
  {p}:x:{exact}    string entry id of an exact key, same TTL
  {p}:n:{ns}       zset   entry id -> expiry time (epoch seconds): the namespace's members
  {p}:ns           hash   namespace -> JSON description (tenant, team, model scope)
  {p}:events       stream add/del events: op, ns, id (+ vector, prompt, expiry for add)
  {p}:r:{team}:{request}  string entry id a team's request was answered from / stored as
                          (for feedback; request ids are unique per team only)
  {p}:s:{ns}       hash   stats: hits, misses, similarity sum, saved cost (a process adds its
                          misses with its next write, at most SEMCACHE_SYNC_INTERVAL_MS later)
  {p}:top:{ns}     zset   entry id -> hits (most-hit entries)
  {p}:thr:{ns}     string threshold increase learned from feedback
"""

import atexit
import json
import threading
import time
import weakref
from dataclasses import dataclass, field
from decimal import Decimal

import numpy as np

REQUEST_TTL_SECONDS = 7 * 24 * 3600


def _stream_id(value: str) -> tuple[int, int]:
    ms, _, seq = value.partition("-")
    return int(ms or 0), int(seq or 0)


class StoreUnavailable(Exception):
    """The store cannot be reached (Redis down): the caller bypasses the cache."""


@dataclass
class Entry:
    """One cached answer."""

    id: str
    namespace: str
    tenant: str
    team_id: int | None
    model_scope: str
    prompt: str
    exact_key: str
    message: dict
    finish_reason: str
    model: str
    usage: dict
    cost: Decimal
    created: float
    expires: float
    hits: int = 0
    last_hit: float | None = None
    vector: np.ndarray | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Event:
    """One change to the store, as the index sees it."""

    cursor: str
    op: str  # "add" | "del" | "reset"
    namespace: str = ""
    entry_id: str = ""
    vector: np.ndarray | None = None
    prompt: str = ""
    expires: float = 0.0


def _entry_fields(entry: Entry) -> dict:
    return {
        "ns": entry.namespace, "tenant": entry.tenant,
        "team": "" if entry.team_id is None else str(entry.team_id),
        "model_scope": entry.model_scope, "prompt": entry.prompt, "exact": entry.exact_key,
        "message": json.dumps(entry.message), "finish_reason": entry.finish_reason,
        "model": entry.model, "usage": json.dumps(entry.usage), "cost": str(entry.cost),
        "created": repr(entry.created), "expires": repr(entry.expires), "hits": "0",
        "last_hit": "", "vec": np.asarray(entry.vector, dtype=np.float32).tobytes(),
    }


def _entry_from_fields(entry_id: str, fields: dict) -> Entry:
    def s(key):
        value = fields.get(key, b"")
        return value.decode() if isinstance(value, bytes) else value

    vec = fields.get("vec")
    return Entry(
        id=entry_id, namespace=s("ns"), tenant=s("tenant"),
        team_id=int(s("team")) if s("team") else None, model_scope=s("model_scope"),
        prompt=s("prompt"), exact_key=s("exact"), message=json.loads(s("message") or "{}"),
        finish_reason=s("finish_reason"), model=s("model"), usage=json.loads(s("usage") or "{}"),
        cost=Decimal(s("cost") or "0"), created=float(s("created") or 0),
        expires=float(s("expires") or 0), hits=int(s("hits") or 0),
        last_hit=float(s("last_hit")) if s("last_hit") else None,
        vector=np.frombuffer(vec, dtype=np.float32) if vec else None,
    )


class BaseStore:
    """The storage contract. Every method may raise `StoreUnavailable`."""

    # --- Methods that child classes must implement ----------------------------------------
    def put(self, entry: Entry, *, namespace_info: dict, request_id: str | None = None) -> None:
        """Store an entry (its vector included) with its expiry, and announce it; with
        `request_id` (a team-scoped key, semcache.services.request_key), also remember that
        request as the one that made it (`remember_request`), in the same round trip."""
        raise NotImplementedError("subclasses of BaseStore must provide a put() method")

    def get(self, entry_id: str) -> Entry | None:
        """Return a live entry without its vector, or None."""
        raise NotImplementedError("subclasses of BaseStore must provide a get() method")

    def get_exact(self, exact_key: str) -> Entry | None:
        """Return the live entry stored under an exact key, or None."""
        raise NotImplementedError("subclasses of BaseStore must provide a get_exact() method")

    def delete(self, entry_ids: list[str], *, namespace: str | None = None) -> int:
        """Delete entries and announce it; return how many existed.

        With `namespace`, ids whose entry already expired are still removed from the
        namespace's member set and announced (the expiry job's case).
        """
        raise NotImplementedError("subclasses of BaseStore must provide a delete() method")

    def members(self, namespace: str, *, now: float) -> list[tuple[str, float]]:
        """Return (entry id, expiry) of the namespace's entries still live at `now`."""
        raise NotImplementedError("subclasses of BaseStore must provide a members() method")

    def due(self, namespace: str, *, now: float, older_than: float | None = None) -> list[str]:
        """Return ids of entries expired at `now` (or, with `older_than`, created before it)."""
        raise NotImplementedError("subclasses of BaseStore must provide a due() method")

    def vectors(self, entry_ids: list[str]) -> list[tuple[np.ndarray, str, float] | None]:
        """Return (vector, prompt, expiry) for each id, None where gone."""
        raise NotImplementedError("subclasses of BaseStore must provide a vectors() method")

    def events(self, cursor: str | None, *, limit: int = 1000) -> tuple[str, list[Event]]:
        """Return (new cursor, events after `cursor`); None: the current end, no events."""
        raise NotImplementedError("subclasses of BaseStore must provide an events() method")

    def namespaces(self) -> dict[str, dict]:
        """Return every known namespace with its description."""
        raise NotImplementedError("subclasses of BaseStore must provide a namespaces() method")

    def forget_namespace(self, namespace: str) -> None:
        """Drop an empty namespace from the registry."""
        raise NotImplementedError("subclasses of BaseStore must provide forget_namespace()")

    def record_hit(self, entry_id: str, namespace: str, *, similarity: float | None,
                   saved: Decimal, now: float, request_id: str | None = None) -> None:
        """Count a hit on the entry (and its saving); with `request_id`, remember that the
        request was answered from it (for feedback) in the same call."""
        raise NotImplementedError("subclasses of BaseStore must provide a record_hit() method")

    def record_miss(self, namespace: str) -> None:
        """Count a miss (a store may batch these: `stats` always includes its own)."""
        raise NotImplementedError("subclasses of BaseStore must provide a record_miss() method")

    def stats(self, namespace: str, *, top: int = 5) -> dict:
        """Return {"hits", "misses", "similarity_sum", "semantic_hits", "saved_cost", "top"}."""
        raise NotImplementedError("subclasses of BaseStore must provide a stats() method")

    def remember_request(self, request_id: str, entry_id: str) -> None:
        raise NotImplementedError("subclasses of BaseStore must provide remember_request()")

    def entry_for_request(self, request_id: str) -> str | None:
        raise NotImplementedError("subclasses of BaseStore must provide entry_for_request()")

    def threshold_delta(self, namespace: str) -> float:
        raise NotImplementedError("subclasses of BaseStore must provide threshold_delta()")

    def tighten(self, namespace: str, *, step: float, ceiling: float) -> float:
        """Raise the namespace's threshold delta by `step` (at most `ceiling`); return it."""
        raise NotImplementedError("subclasses of BaseStore must provide a tighten() method")

    def ping(self) -> None:
        raise NotImplementedError("subclasses of BaseStore must provide a ping() method")

    def flush(self) -> None:
        """Delete everything this store holds (tests and `purge_cache --all`)."""
        raise NotImplementedError("subclasses of BaseStore must provide a flush() method")


class MemoryStore(BaseStore):
    """In-process store: the embedded default when no Redis is configured (one process)."""

    def __init__(self, *, max_events: int = 200_000, **_):
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
                        "saved_cost": Decimal(0), "top": {}},
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


def _flush_at_exit(ref: "weakref.ref[RedisStore]") -> None:
    store = ref()
    if store is not None:
        try:
            store.flush_misses()
        except Exception:  # noqa: BLE001 - Redis may be gone at exit; the counts are only stats
            pass


class RedisStore(BaseStore):
    """Redis store shared by every gateway process (redis-py, the client django-redis wraps)."""

    def __init__(self, *, url: str, prefix: str = "semcache", timeout: float = 0.25,
                 max_events: int = 200_000, miss_flush_interval: float = 0.0):
        import redis

        self._redis_errors = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError,
                              OSError)
        self.r = redis.Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout,
            health_check_interval=30, retry_on_timeout=False,
        )
        self.p = prefix
        self.max_events = max_events
        # Misses are counted here and written at most every `miss_flush_interval` seconds, or
        # sooner with the next write this process makes anyway (a stored answer, a hit): a
        # miss is otherwise the one Redis round trip of its lookup. `stats` and process exit
        # flush what is pending.
        self.miss_flush_interval = miss_flush_interval
        self._misses: dict[str, int] = {}
        self._misses_lock = threading.Lock()
        self._misses_flushed = time.monotonic()
        atexit.register(_flush_at_exit, weakref.ref(self))

    def _k(self, *parts) -> str:
        return ":".join((self.p, *parts))

    def _call(self, fn):
        try:
            return fn()
        except self._redis_errors as exc:
            raise StoreUnavailable(str(exc)) from exc

    def put(self, entry, *, namespace_info, request_id=None):
        ttl = max(1, int(entry.expires - time.time() + 0.999))
        fields = _entry_fields(entry)

        def run():
            pipe = self.r.pipeline(transaction=True)
            pipe.hset(self._k("e", entry.id), mapping=fields)
            pipe.expire(self._k("e", entry.id), ttl)
            # SET … GET: the entry this exact key pointed at before, replaced below, in the same
            # round trip (a separate GET first cost one more per stored answer).
            pipe.set(self._k("x", entry.exact_key), entry.id, ex=ttl, get=True)
            pipe.zadd(self._k("n", entry.namespace), {entry.id: entry.expires})
            pipe.hsetnx(self._k("ns"), entry.namespace, json.dumps(namespace_info))
            pipe.xadd(
                self._k("events"),
                {"op": "add", "ns": entry.namespace, "id": entry.id, "vec": fields["vec"],
                 "prompt": entry.prompt, "exp": repr(entry.expires)},
                maxlen=self.max_events, approximate=True,
            )
            if request_id:
                pipe.set(self._k("r", request_id), entry.id, ex=REQUEST_TTL_SECONDS)
            self._queue_misses(pipe, misses)
            old = pipe.execute()[2]
            if old and old.decode() != entry.id:
                # Its exact key already points at the new entry, which `delete` leaves alone.
                self.delete([old.decode()])

        misses = self._take_misses()
        self._call_with_misses(run, misses)

    _GET_FIELDS = ("ns", "tenant", "team", "model_scope", "prompt", "exact", "message",
                   "finish_reason", "model", "usage", "cost", "created", "expires", "hits",
                   "last_hit")

    def get(self, entry_id):
        values = self._call(lambda: self.r.hmget(self._k("e", entry_id), self._GET_FIELDS))
        if values[0] is None:
            return None
        entry = _entry_from_fields(entry_id, dict(zip(self._GET_FIELDS, values, strict=True)))
        return entry if entry.expires > time.time() else None

    def get_exact(self, exact_key):
        entry_id = self._call(lambda: self.r.get(self._k("x", exact_key)))
        return self.get(entry_id.decode()) if entry_id else None

    def delete(self, entry_ids, *, namespace=None):
        if not entry_ids:
            return 0

        def run():
            pipe = self.r.pipeline(transaction=False)
            for entry_id in entry_ids:
                pipe.hmget(self._k("e", entry_id), ("ns", "exact"))
            found = pipe.execute()
            pipe = self.r.pipeline(transaction=True)
            count = 0
            for entry_id, (ns, exact) in zip(entry_ids, found, strict=True):
                pipe.delete(self._k("e", entry_id))
                if ns is None:
                    if namespace is None:
                        continue
                    ns = namespace.encode()  # expired already: clean up its traces
                count += 1
                ns = ns.decode()
                if exact is not None:
                    # Only drop the exact key if it still points at this entry.
                    pipe.eval(
                        "if redis.call('get', KEYS[1]) == ARGV[1] then "
                        "return redis.call('del', KEYS[1]) end return 0",
                        1, self._k("x", exact.decode()), entry_id,
                    )
                pipe.zrem(self._k("n", ns), entry_id)
                pipe.zrem(self._k("top", ns), entry_id)
                pipe.xadd(self._k("events"), {"op": "del", "ns": ns, "id": entry_id},
                          maxlen=self.max_events, approximate=True)
            pipe.execute()
            return count

        return self._call(run)

    def members(self, namespace, *, now):
        rows = self._call(lambda: self.r.zrangebyscore(
            self._k("n", namespace), f"({now!r}", "+inf", withscores=True))
        return [(i.decode(), float(s)) for i, s in rows]

    def due(self, namespace, *, now, older_than=None):
        ids = [i.decode() for i in self._call(lambda: self.r.zrangebyscore(
            self._k("n", namespace), "-inf", repr(now)))]
        if older_than is not None:
            live = [i for i, _ in self.members(namespace, now=now)]
            created = self._call(lambda: self._pipeline_hget(live, "created"))
            ids += [i for i, c in zip(live, created, strict=True)
                    if c is None or float(c) < older_than]
        return ids

    def _pipeline_hget(self, entry_ids, field_name):
        pipe = self.r.pipeline(transaction=False)
        for entry_id in entry_ids:
            pipe.hget(self._k("e", entry_id), field_name)
        return pipe.execute()

    def vectors(self, entry_ids):
        def run():
            out = []
            for start in range(0, len(entry_ids), 1000):
                pipe = self.r.pipeline(transaction=False)
                for entry_id in entry_ids[start:start + 1000]:
                    pipe.hmget(self._k("e", entry_id), ("vec", "prompt", "expires"))
                for vec, prompt, expires in pipe.execute():
                    if vec is None:
                        out.append(None)
                    else:
                        out.append((np.frombuffer(vec, dtype=np.float32), prompt.decode(),
                                    float(expires)))
            return out

        return self._call(run)

    def events(self, cursor, *, limit=1000):
        # The cursor is "<last stream id read>@<entries added to the stream up to it>": when the
        # stream holds fewer entries than were added since, some were trimmed unread -> reset.
        key = self._k("events")

        def run():
            pipe = self.r.pipeline(transaction=False)
            if cursor is not None:
                pipe.xread({key: cursor.partition("@")[0]}, count=limit)
            pipe.xinfo_stream(key)
            return pipe.execute(raise_on_error=False)

        replies = self._call(run)
        info = replies[-1] if isinstance(replies[-1], dict) else {}
        added = int(info.get("entries-added", 0))
        last_id = info.get("last-generated-id", b"0-0")
        last_id = last_id.decode() if isinstance(last_id, bytes) else str(last_id or "0-0")
        if cursor is None:
            return f"{last_id}@{added}", []
        read_id, _, read_added = cursor.partition("@")
        read_added = int(read_added or 0)
        result = replies[0]
        rows = [] if isinstance(result, Exception) or not result else result[0][1]
        if added < read_added or int(info.get("length", 0)) < added - read_added:
            return f"{last_id}@{added}", [Event(cursor=f"{last_id}@{added}", op="reset")]
        if not rows:
            return cursor, []
        cursor_out = f"{rows[-1][0].decode()}@{read_added + len(rows)}"
        events = []
        for event_id, fields in rows:
            op = fields[b"op"].decode()
            if op == "add":
                events.append(Event(
                    cursor=event_id.decode(), op="add", namespace=fields[b"ns"].decode(),
                    entry_id=fields[b"id"].decode(),
                    vector=np.frombuffer(fields[b"vec"], dtype=np.float32),
                    prompt=fields[b"prompt"].decode(), expires=float(fields[b"exp"]),
                ))
            else:
                events.append(Event(cursor=event_id.decode(), op=op,
                                    namespace=fields[b"ns"].decode(),
                                    entry_id=fields[b"id"].decode()))
        return cursor_out, events

    def namespaces(self):
        raw = self._call(lambda: self.r.hgetall(self._k("ns")))
        return {k.decode(): json.loads(v) for k, v in raw.items()}

    def forget_namespace(self, namespace):
        def run():
            if self.r.zcard(self._k("n", namespace)) == 0:
                self.r.hdel(self._k("ns"), namespace)
                self.r.delete(self._k("s", namespace), self._k("top", namespace),
                              self._k("thr", namespace))

        self._call(run)

    def record_hit(self, entry_id, namespace, *, similarity, saved, now, request_id=None):
        def run():
            pipe = self.r.pipeline(transaction=False)
            if request_id:
                pipe.set(self._k("r", request_id), entry_id, ex=REQUEST_TTL_SECONDS)
            self._queue_misses(pipe, misses)
            pipe.hincrby(self._k("e", entry_id), "hits", 1)
            pipe.hset(self._k("e", entry_id), "last_hit", repr(now))
            pipe.hincrby(self._k("s", namespace), "hits", 1)
            if similarity is not None:
                pipe.hincrby(self._k("s", namespace), "semantic_hits", 1)
                pipe.hincrbyfloat(self._k("s", namespace), "similarity_sum", similarity)
            pipe.hincrbyfloat(self._k("s", namespace), "saved_cost", float(saved))
            pipe.zincrby(self._k("top", namespace), 1, entry_id)
            pipe.execute()

        misses = self._take_misses()
        self._call_with_misses(run, misses)

    def record_miss(self, namespace):
        with self._misses_lock:
            self._misses[namespace] = self._misses.get(namespace, 0) + 1
            due = time.monotonic() - self._misses_flushed >= self.miss_flush_interval
        if due:
            self.flush_misses()

    def flush_misses(self) -> None:
        """Write the misses counted since the last write (one pipeline for every namespace)."""
        misses = self._take_misses()
        if misses:
            def run():
                pipe = self.r.pipeline(transaction=False)
                self._queue_misses(pipe, misses)
                pipe.execute()

            self._call_with_misses(run, misses)

    def _take_misses(self) -> dict[str, int]:
        with self._misses_lock:
            misses, self._misses = self._misses, {}
            self._misses_flushed = time.monotonic()
        return misses

    def _queue_misses(self, pipe, misses: dict[str, int]) -> None:
        for namespace, count in misses.items():
            pipe.hincrby(self._k("s", namespace), "misses", count)

    def _call_with_misses(self, fn, misses: dict[str, int]):
        """Run `fn` (which writes `misses`); if Redis fails, keep them for the next write."""
        try:
            return self._call(fn)
        except StoreUnavailable:
            if misses:
                with self._misses_lock:
                    for namespace, count in misses.items():
                        self._misses[namespace] = self._misses.get(namespace, 0) + count
            raise

    def stats(self, namespace, *, top=5):
        self.flush_misses()

        def run():
            pipe = self.r.pipeline(transaction=False)
            pipe.hgetall(self._k("s", namespace))
            pipe.zrevrange(self._k("top", namespace), 0, top - 1, withscores=True)
            return pipe.execute()

        raw, ranked = self._call(run)
        raw = {k.decode(): v.decode() for k, v in raw.items()}
        return {
            "hits": int(raw.get("hits", 0)), "misses": int(raw.get("misses", 0)),
            "semantic_hits": int(raw.get("semantic_hits", 0)),
            "similarity_sum": float(raw.get("similarity_sum", 0)),
            "saved_cost": Decimal(raw.get("saved_cost", "0")).quantize(Decimal("0.00000001")),
            "top": [(i.decode(), int(s)) for i, s in ranked],
        }

    def remember_request(self, request_id, entry_id):
        self._call(lambda: self.r.set(self._k("r", request_id), entry_id, ex=REQUEST_TTL_SECONDS))

    def entry_for_request(self, request_id):
        value = self._call(lambda: self.r.get(self._k("r", request_id)))
        return value.decode() if value else None

    def threshold_delta(self, namespace):
        value = self._call(lambda: self.r.get(self._k("thr", namespace)))
        return float(value) if value else 0.0

    def tighten(self, namespace, *, step, ceiling):
        def run():
            value = self.r.incrbyfloat(self._k("thr", namespace), step)
            if value > ceiling:
                self.r.set(self._k("thr", namespace), ceiling)
                return ceiling
            return value

        return self._call(run)

    def ping(self):
        self._call(self.r.ping)

    def flush(self):
        """Delete every key under the prefix (SCAN, never KEYS; an admin action, not a hot path)."""
        def run():
            batch = []
            for key in self.r.scan_iter(match=f"{self.p}:*", count=1000):
                batch.append(key)
                if len(batch) >= 1000:
                    self.r.delete(*batch)
                    batch = []
            if batch:
                self.r.delete(*batch)

        self._call(run)
