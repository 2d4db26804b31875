"""Redis store shared by every gateway process (layout: semcache/store/redis_layout.py)."""

import atexit
import json
import threading
import time
import weakref
from decimal import Decimal

import numpy as np

from semcache.store.base import REQUEST_TTL_SECONDS, BaseStore, StoreUnavailable
from semcache.store.redis_layout import ENTRY_FIELDS, entry_fields, entry_from_fields, events_after


def _flush_at_exit(ref: "weakref.ref[RedisStore]") -> None:
    store = ref()
    if store is not None:
        try:
            store.flush_misses()
        except Exception:  # noqa: BLE001 - Redis may be gone at exit; the counts are only stats
            pass


# KEYS: the threshold delta, the namespace's stats hash; ARGV: step, low, high, new window (1/0).
# Returned as a string: Redis would truncate a Lua number to an integer.
_CLAMPED_ADD = """
local value = (tonumber(redis.call('GET', KEYS[1])) or 0) + tonumber(ARGV[1])
value = math.max(tonumber(ARGV[2]), math.min(tonumber(ARGV[3]), value))
local text = string.format('%.17g', value)
redis.call('SET', KEYS[1], text)
if ARGV[4] == '1' then redis.call('HDEL', KEYS[2], 'window_agree', 'window_disagree') end
return text
"""


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
        self._clamped_add_script = self.r.register_script(_CLAMPED_ADD)
        # Whether writes are announced on the event stream that processes' in-process indexes
        # follow; off when Redis searches the vectors itself (semcache/store/redis_search.py):
        # nothing reads the stream then, and its add events carry every vector.
        self.announce = True
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
        fields = entry_fields(entry)

        def run():
            pipe = self.r.pipeline(transaction=True)
            pipe.hset(self._k("e", entry.id), mapping=fields)
            pipe.expire(self._k("e", entry.id), ttl)
            # SET … GET: the entry this exact key pointed at before, replaced below, in the same
            # round trip (a separate GET first cost one more per stored answer).
            pipe.set(self._k("x", entry.exact_key), entry.id, ex=ttl, get=True)
            pipe.zadd(self._k("n", entry.namespace), {entry.id: entry.expires})
            pipe.hsetnx(self._k("ns"), entry.namespace, json.dumps(namespace_info))
            if self.announce:
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

    def get(self, entry_id):
        values = self._call(lambda: self.r.hmget(self._k("e", entry_id), ENTRY_FIELDS))
        if values[0] is None:
            return None
        entry = entry_from_fields(entry_id, dict(zip(ENTRY_FIELDS, values, strict=True)))
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
                if self.announce:
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
        key = self._k("events")

        def run():
            pipe = self.r.pipeline(transaction=False)
            if cursor is not None:
                pipe.xread({key: cursor.partition("@")[0]}, count=limit)
            pipe.xinfo_stream(key)
            return pipe.execute(raise_on_error=False)

        return events_after(cursor, self._call(run))

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
            "verified_agree": int(raw.get("verified_agree", 0)),
            "verified_disagree": int(raw.get("verified_disagree", 0)),
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
        # A delta on a cosine threshold never goes below -1: no floor in effect.
        return self._clamped_add(namespace, step=step, low=-1.0, high=ceiling, new_window=False)

    def record_verification(self, namespace, *, agreed):
        side = "agree" if agreed else "disagree"
        key = self._k("s", namespace)

        def run():
            pipe = self.r.pipeline(transaction=True)
            pipe.hincrby(key, f"verified_{side}", 1)
            pipe.hincrby(key, f"window_{side}", 1)
            pipe.hmget(key, "verified_agree", "verified_disagree", "window_agree",
                       "window_disagree")
            return pipe.execute()[-1]

        values = [int(v or 0) for v in self._call(run)]
        return dict(zip(("agree", "disagree", "window_agree", "window_disagree"), values,
                        strict=True))

    def shift_threshold(self, namespace, *, step, low, high):
        return self._clamped_add(namespace, step=step, low=low, high=high, new_window=True)

    def _clamped_add(self, namespace, *, step, low, high, new_window):
        """Add `step` to the namespace's threshold delta, kept within [low, high], in one
        script: two processes moving it at once each see the other's move (an increment then
        a separate clamp could undo one)."""
        keys = [self._k("thr", namespace), self._k("s", namespace)]
        args = [repr(float(step)), repr(float(low)), repr(float(high)), int(new_window)]
        return float(self._call(lambda: self._clamped_add_script(keys=keys, args=args)))

    def ping(self):
        self._call(self.r.ping)

    def get_values(self, keys):
        if not keys:
            return []
        return self._call(lambda: self.r.mget([self._k("v", key) for key in keys]))

    def put_values(self, values, *, ttl_seconds):
        if not values:
            return
        ttl = max(1, int(ttl_seconds))

        def run():
            pipe = self.r.pipeline(transaction=False)
            for key, value in values.items():
                pipe.set(self._k("v", key), value, ex=ttl)
            pipe.execute()

        self._call(run)

    def clear_values(self):
        def run():
            count, batch = 0, []
            for key in self.r.scan_iter(match=self._k("v", "*"), count=1000):
                batch.append(key)
                if len(batch) >= 1000:
                    count += self.r.delete(*batch)
                    batch = []
            if batch:
                count += self.r.delete(*batch)
            return count

        return self._call(run)

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
