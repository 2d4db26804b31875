"""Vector search inside Redis' query engine: one FT index over the entry hashes RedisStore writes.

When the Redis server has a query engine (Redis 8+, Redis Stack, Valkey with a search module),
the namespaces' vectors are searched where they already live: one HNSW index (cosine) named
`{prefix}:idx` over every `{prefix}:e:*` hash, with the namespace a TAG field. A lookup is one
`FT.SEARCH`:

    (@ns:{<namespace>})=>[KNN k+2 @vec $v AS dist]=>{$HYBRID_POLICY: <policy>; $EF_RUNTIME: 128}

the namespace filter runs inside the KNN query (the engine ranks only the namespace's entries),
never after it; of what it returns, entries past their expiry time (not yet deleted by their
TTL) are skipped, as the in-process index does. Redis indexes an entry when `put` writes its
hash and unindexes it when the hash is deleted (purge, feedback, a replaced exact key) or expires
by TTL, so gateway processes hold no index and follow no event stream: a new process answers at
once.

The policy is chosen per namespace from its size (its member set's ZCARD, re-read at most every
`SIZE_REFRESH_SECONDS`): a small namespace is compared entry by entry (ADHOC_BF: exact), one that
is a large share of the index walks the HNSW graph in batches (BATCHES), and in between the
engine decides. RediSearch 2.10's own choice compared a namespace holding half of a 10k-entry
index entry by entry, 19 ms a search against 0.4 ms in batches (docs/performance.md).

The graph has its own parameters (`HNSW_M`, below), not the in-process index's: an index made
with other ones keeps them (the gateway logs a warning) until it is dropped and made again.

`query_engine_missing(store)` says why a server cannot do this (no FT commands, or a database
other than 0, the only one the engine indexes); the engine then keeps the in-process index
(semcache/registry.py). Exact-only entries carry a zero vector, which a cosine KNN never returns.
"""

import logging
import time

import numpy as np

from semcache.index import DIMENSIONS, Candidate
from semcache.store.base import StoreUnavailable
from semcache.store.redis_store import RedisStore

logger = logging.getLogger(__name__)

_NO_INDEX = ("no such index", "unknown index")
# How a namespace is searched, by its size (measured: bench/semcache_redis_search.py).
ADHOC_MAX_ENTRIES = 1_000      # at most this many: compare every entry (exact)
BATCHES_MIN_SHARE = 0.1        # at least this share of the index: HNSW in batches
SIZE_REFRESH_SECONDS = 5.0     # how stale a namespace's (or the index's) size may be
MAX_CACHED_SIZES = 10_000      # namespaces whose size a process remembers at once
# The HNSW graph. RediSearch keeps at most 2 x M links per entry on the graph's bottom layer, and
# when more entries than that lie around one entry, nearer to it than to each other (a popular
# question and its stored paraphrases), it drops the links to the rest: no search reaches them
# any more, at any EF_RUNTIME. With M 16 (the in-process index's) one namespace of 1M entries,
# ~86 such neighbours per question, agreed with exact search on 55% of lookups; with M 64 on
# 99%, at 2.4 ms of Redis time per search instead of 0.65, and 1-2 ms per deleted entry instead
# of 0.3 (bench/semcache_redis_search.py, docs/performance.md).
HNSW_M = 64
HNSW_EF_CONSTRUCTION = 128
HNSW_EF_RUNTIME = 128          # sent with each graph query: it holds for an older index too


def _is_missing_index(exc: Exception) -> bool:
    return any(marker in str(exc).lower() for marker in _NO_INDEX)


def query_engine_missing(store: RedisStore) -> str | None:
    """Return why the store's server cannot search vectors (None: it can).

    Raises StoreUnavailable when the server cannot be reached (no answer either way yet).
    """
    import redis

    try:
        store._call(lambda: store.r.execute_command("FT._LIST"))
    except redis.exceptions.ResponseError as exc:
        return f"the Redis server has no query engine (FT._LIST: {exc})"
    db = store.r.connection_pool.connection_kwargs.get("db", 0) or 0
    if int(db) != 0:
        return f"the query engine indexes database 0 only; SEMCACHE_REDIS_URL uses database {db}"
    return None


class RedisVectorSearch:
    """Nearest live entries of a namespace, searched by Redis (the in-process registry's twin:
    the same `search`, and no-ops for what a process-held index needs)."""

    kind = "redis"

    def __init__(self, store: RedisStore, *, connectivity: int = HNSW_M,
                 expansion_add: int = HNSW_EF_CONSTRUCTION,
                 expansion_search: int = HNSW_EF_RUNTIME, dimensions: int = DIMENSIONS):
        self.store = store
        self.name = f"{store.p}:idx"
        self.expansion_search = expansion_search
        self._params = {"TYPE": "FLOAT32", "DIM": dimensions, "DISTANCE_METRIC": "COSINE",
                        "M": connectivity, "EF_CONSTRUCTION": expansion_add,
                        "EF_RUNTIME": expansion_search}
        # namespace (or "" for the whole index) -> (size, time.monotonic() read)
        self._sizes: dict[str, tuple[int, float]] = {}
        self.ensure_index()

    @property
    def detail(self) -> str:
        return f"Redis query engine, FT index {self.name} (HNSW, cosine)"

    def ensure_index(self) -> None:
        """Create the index unless it exists (Redis indexes the entries already there); warn
        when an existing one was made with another graph than this process would make."""
        import redis
        from redis.commands.search.field import TagField, VectorField
        from redis.commands.search.index_definition import IndexDefinition, IndexType

        def create():
            try:
                self.store.r.ft(self.name).create_index(
                    [TagField("ns"), VectorField("vec", "HNSW", self._params)],
                    definition=IndexDefinition(prefix=[self.store._k("e", "")],
                                               index_type=IndexType.HASH))
                logger.info("semcache: created the Redis vector index %s", self.name)
            except redis.exceptions.ResponseError as exc:
                if "already exists" not in str(exc).lower():
                    raise
                self._warn_if_other_graph()

        self.store._call(create)

    def graph_parameters(self) -> dict[str, int]:
        """Return the existing index's HNSW build parameters ({"M": .., "EF_CONSTRUCTION": ..})."""
        for attribute in self.store.r.ft(self.name).info()["attributes"]:
            fields = [f.decode() if isinstance(f, bytes) else f for f in attribute]
            found = dict(zip(fields[::2], fields[1::2], strict=False))
            if found.get("identifier") == "vec":
                return {"M": int(found.get("M", 0)),
                        "EF_CONSTRUCTION": int(found.get("ef_construction", 0))}
        return {}

    def _warn_if_other_graph(self) -> None:
        wanted = {key: self._params[key] for key in ("M", "EF_CONSTRUCTION")}
        found = self.graph_parameters()
        if found != wanted:
            logger.warning(
                "semcache: the Redis vector index %s was made with %s, not %s: lookups in large "
                "namespaces may miss near neighbours (docs/semantic-cache.md). FT.DROPINDEX %s "
                "(without DD) drops it; the next gateway start makes it again, and Redis "
                "re-indexes the entries in the background.", self.name, found, wanted, self.name)

    def search(self, namespace: str, vector: np.ndarray, k: int, *,
               now: float | None = None) -> list[Candidate]:
        """Return up to `k` live entries of the namespace nearest to `vector`, most similar
        first."""
        import redis

        now = time.time() if now is None else now
        blob = np.asarray(vector, dtype=np.float32).reshape(-1).tobytes()
        query = (f"(@ns:{{{namespace}}})=>[KNN {k + 2} @vec $v AS dist]"
                 f"=>{{{query_attributes(self.policy(namespace), self.expansion_search)}}}")
        command = ("FT.SEARCH", self.name, query, "PARAMS", 2, "v", blob, "SORTBY", "dist",
                   "RETURN", 3, "prompt", "expires", "dist", "LIMIT", 0, k + 2, "DIALECT", 2)

        def run():
            try:
                return self.store.r.execute_command(*command)
            except redis.exceptions.ResponseError as exc:
                if not _is_missing_index(exc):
                    # E.g. a server that lost its query engine (a failover to one without):
                    # the cache is bypassed, as when Redis is down, until it answers again.
                    raise StoreUnavailable(f"vector search failed: {exc}") from exc
                # Dropped under us (FLUSHALL drops every index): make it again, then retry.
                self.ensure_index()
                return self.store.r.execute_command(*command)

        reply = self.store._call(run)
        return _candidates(reply, self.store._k("e", ""), now=now)[:k]

    def policy(self, namespace: str) -> str:
        """Return the hybrid policy for the namespace's KNN query ("": the engine's choice)."""
        size = self._size(namespace, lambda: self.store.r.zcard(self.store._k("n", namespace)))
        if size <= ADHOC_MAX_ENTRIES:
            return "ADHOC_BF"
        total = self._size("", lambda: int(self.store.r.ft(self.name).info()["num_docs"]))
        return "BATCHES" if size >= BATCHES_MIN_SHARE * total else ""

    def _size(self, key: str, read) -> int:
        now = time.monotonic()
        cached = self._sizes.get(key)
        if cached is not None and now - cached[1] < SIZE_REFRESH_SECONDS:
            return cached[0]
        size = int(self.store._call(read))
        if len(self._sizes) >= MAX_CACHED_SIZES:
            self._sizes.clear()
        self._sizes[key] = (size, now)
        return size

    # The in-process registry's maintenance: nothing to do when Redis holds the index.
    def add_local(self, namespace, entry_id, vector, prompt, expires) -> None:
        pass

    def discard(self, namespace: str, entry_id: str) -> None:
        pass

    def sync(self) -> int:
        return 0

    def sweep(self, now: float) -> int:
        return 0

    def loaded(self) -> dict[str, int]:
        return {}


def query_attributes(policy: str, expansion_search: int) -> str:
    """Return the KNN query's attributes: the hybrid policy ("": the engine's choice) and, for a
    query that walks the graph, its EF_RUNTIME (RediSearch refuses one with ADHOC_BF)."""
    attributes = [f"$HYBRID_POLICY: {policy}"] if policy else []
    if policy != "ADHOC_BF":
        attributes.append(f"$EF_RUNTIME: {expansion_search}")
    return "; ".join(attributes)


def _candidates(reply, key_prefix: str, *, now: float) -> list[Candidate]:
    """Parse FT.SEARCH's reply, RESP3's map ({"results": [{"id", "extra_attributes"}]}) or
    RESP2's list ([total, key, [field, value, ...], key, [...], ...]), skipping entries expired
    at `now`."""
    if isinstance(reply, dict):
        rows = [(row[b"id"], row.get(b"extra_attributes") or {}) for row in reply[b"results"]]
    else:
        rows = [(key, dict(zip((fields or [])[::2], (fields or [])[1::2], strict=True)))
                for key, fields in zip(reply[1::2], reply[2::2], strict=True)]
    out = []
    for key, values in rows:
        # An entry whose hash expired between the search and the reading of its fields comes
        # back without them: it is gone, like one past its expiry time.
        if b"dist" not in values or float(values.get(b"expires", b"inf")) <= now:
            continue
        out.append(Candidate(
            entry_id=key.decode()[len(key_prefix):],
            similarity=1.0 - float(values[b"dist"]),
            prompt=values.get(b"prompt", b"").decode(),
        ))
    return out
