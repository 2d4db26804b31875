"""Benchmark: the semantic cache's KNN query through redis-py's search commands vs RedisVL.

Both query the same FT index (the gateway's layout: hashes `<prefix>:e:<id>` with a `ns` tag and
an HNSW cosine `vec`, semcache/store/redis_search.py) for the namespace's nearest entries with
the tag filter inside the KNN query, returning the same fields. The two paths are interleaved
query by query (in alternating order), so a busy machine slows both alike. Prints p50/p99
wall-clock and client CPU per query, the server's time per FT.SEARCH, and whether both return
the same top hit.

RedisVL is not a dependency of the gateway; run this from a virtualenv that has it:

    python3 -m venv /tmp/rvl && /tmp/rvl/bin/pip install redisvl==0.28.0 redis==8.1.0
    /tmp/rvl/bin/python bench/semcache_redisvl.py --redis-url redis://127.0.0.1:PORT/0 \
        [--entries 100000] [--queries 500]

The server needs a query engine (a private one: `.venv/bin/python -m tests.toolkit.redis_server`
is not a command; start Valkey + RediSearch as tests/toolkit/redis_server.py does). Vectors are
random but clustered (1,000 centres, cosine ~0.95 to their centre), 384 dimensions.
"""

import argparse
import time

import numpy as np
import redis

PREFIX = "bench-rvl"
NS = "a" * 64
DIM = 384
PARAMS = {"TYPE": "FLOAT32", "DIM": DIM, "DISTANCE_METRIC": "COSINE", "M": 16,
          "EF_CONSTRUCTION": 128, "EF_RUNTIME": 128}  # semcache/index.py's ANN_* constants


def clustered(n: int, rng) -> np.ndarray:
    centres = rng.standard_normal((1000, DIM)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    out = centres[rng.integers(0, len(centres), n)]
    out = out + rng.standard_normal(out.shape).astype(np.float32) * 0.018
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def load(r: redis.Redis, vectors: np.ndarray, prefix: str, ns: str) -> float:
    from redis.commands.search.field import TagField, VectorField
    from redis.commands.search.index_definition import IndexDefinition, IndexType

    try:
        r.ft(f"{prefix}:idx").dropindex(delete_documents=True)
    except redis.ResponseError:
        pass
    r.ft(f"{prefix}:idx").create_index([TagField("ns"), VectorField("vec", "HNSW", PARAMS)],
                             definition=IndexDefinition(prefix=[f"{prefix}:e:"],
                                                        index_type=IndexType.HASH))
    t0 = time.perf_counter()
    pipe = r.pipeline(transaction=False)
    for i, v in enumerate(vectors):
        pipe.hset(f"{prefix}:e:{i}", mapping={"ns": ns, "prompt": f"stored question {i}",
                                               "expires": "1e12", "vec": v.tobytes()})
        if i % 2000 == 1999:
            pipe.execute()
    pipe.execute()
    while True:
        info = r.ft(f"{prefix}:idx").info()
        if int(info["num_docs"]) >= len(vectors) and str(info["indexing"]) in ("0", "0.0"):
            return time.perf_counter() - t0
        time.sleep(0.5)


def near_queries(r: redis.Redis, prefix: str, count: int, rng) -> np.ndarray:
    """Return perturbed copies (cosine ~0.95) of `count` stored vectors."""
    keys = []
    for key in r.scan_iter(match=f"{prefix}:e:*", count=5000):
        keys.append(key)
        if len(keys) == count:
            break
    vectors = np.stack([np.frombuffer(r.hget(k, "vec"), dtype=np.float32) for k in keys])
    out = vectors + rng.standard_normal(vectors.shape).astype(np.float32) * 0.016
    return (out / np.linalg.norm(out, axis=1, keepdims=True)).astype(np.float32)


def redis_py_query(r: redis.Redis, vector: np.ndarray, prefix: str, ns: str, policy: str,
                   k: int = 3) -> str:
    """The gateway's own query (semcache/store/redis_search.py), top hit's key."""
    query = (f"(@ns:{{{ns}}})=>[KNN {k + 2} @vec $v AS dist]"
             + (f"=>{{$HYBRID_POLICY: {policy}}}" if policy else ""))
    reply = r.execute_command("FT.SEARCH", f"{prefix}:idx", query, "PARAMS", 2, "v",
                              vector.tobytes(), "SORTBY", "dist", "RETURN", 3, "prompt",
                              "expires", "dist", "LIMIT", 0, k + 2, "DIALECT", 2)
    if isinstance(reply, dict):  # RESP3
        rows = reply[b"results"]
        return rows[0][b"id"].decode() if rows else ""
    return reply[1].decode() if reply[0] else ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--skip-load", action="store_true",
                        help="Query entries already on the server (e.g. bench/"
                             "semcache_redis_search.py --keep) under --prefix and --namespace.")
    parser.add_argument("--policy", default="BATCHES",
                        help="Hybrid policy of both queries (the gateway's for a namespace this "
                             "large; '' for the engine's choice).")
    parser.add_argument("--prefix", default=PREFIX)
    parser.add_argument("--namespace", default=NS)
    args = parser.parse_args()
    prefix, ns = args.prefix, args.namespace
    import redisvl
    from redisvl.index import SearchIndex
    from redisvl.query import VectorQuery
    from redisvl.query.filter import Tag

    r = redis.Redis.from_url(args.redis_url)
    rng = np.random.default_rng(7)
    if not args.skip_load:
        vectors = clustered(args.entries, rng)
        seconds = load(r, vectors, prefix, ns)
        print(f"loaded and indexed {args.entries:,} entries in {seconds:.0f} s", flush=True)
        queries = clustered(args.queries, np.random.default_rng(11))
    else:
        queries = near_queries(r, prefix, args.queries, rng)
    entries = int(r.ft(f"{prefix}:idx").info()["num_docs"])
    index = SearchIndex.from_dict({
        "index": {"name": f"{prefix}:idx", "prefix": f"{prefix}:e:", "storage_type": "hash"},
        "fields": [{"name": "ns", "type": "tag"},
                   {"name": "vec", "type": "vector",
                    "attrs": {"algorithm": "hnsw", "dims": DIM, "distance_metric": "cosine",
                              "datatype": "float32", "m": 16, "ef_construction": 128,
                              "ef_runtime": 128}}]}, redis_client=r)

    def redisvl_query(vector: np.ndarray, k: int = 3) -> str:
        query = VectorQuery(vector=vector.tobytes(), vector_field_name="vec",
                            return_fields=["prompt", "expires"], num_results=k + 2,
                            filter_expression=Tag("ns") == ns, return_score=True,
                            dtype="float32", hybrid_policy=args.policy or None)
        rows = index.query(query)
        return rows[0]["id"] if rows else ""

    paths = {"redis-py": lambda v: redis_py_query(r, v, prefix, ns, args.policy),
             "redisvl": redisvl_query}
    for run in paths.values():  # warm both (imports, buffers)
        for q in queries[:20]:
            run(q)
    wall = {name: [] for name in paths}
    cpu = {name: [] for name in paths}
    server = {name: 0.0 for name in paths}
    agree = 0
    for i, q in enumerate(queries):
        tops = {}
        # Alternate which path goes first: the second search of the same vector finds the graph
        # nodes it walks in the CPU caches.
        for name in (list(paths) if i % 2 else list(paths)[::-1]):
            run = paths[name]
            r.config_resetstat()
            t, c = time.perf_counter(), time.thread_time()
            tops[name] = run(q)
            wall[name].append((time.perf_counter() - t) * 1000)
            cpu[name].append((time.thread_time() - c) * 1000)
            stats = r.info("commandstats").get("cmdstat_FT.SEARCH") or \
                r.info("commandstats").get("cmdstat_ft.search")
            server[name] += float(stats["usec"]) / 1000 if stats else 0.0
        agree += tops["redis-py"] == tops["redisvl"]
    print(f"redisvl {redisvl.__version__}, redis-py {redis.__version__}, {entries:,} "
          f"entries, {len(queries)} queries interleaved")
    print("| query path | p50 ms | p99 ms | client CPU p50 / p99 ms | server ms per query |")
    print("|---|---:|---:|---|---:|")
    for name in paths:
        w, c = np.asarray(wall[name]), np.asarray(cpu[name])
        print(f"| {name} | {np.median(w):.2f} | {np.percentile(w, 99):.2f} | "
              f"{np.median(c):.2f} / {np.percentile(c, 99):.2f} | "
              f"{server[name] / len(queries):.2f} |")
    print(f"same top hit: {agree / len(queries):.3f}")


if __name__ == "__main__":
    main()
