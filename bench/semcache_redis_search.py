"""Benchmark: semantic cache lookup in Redis' query engine vs the in-process index.

For each size (entries in one namespace, the worst case for one tenant), prints
  - in-process: NamespaceIndex search + decision (exact numpy below 20k entries, HNSW above),
    and the RSS the index adds to every gateway process that loads the namespace;
  - redis: `CacheEngine.find_semantic` with the Redis vector search (one FT.SEARCH KNN query
    filtered on the namespace and expiry, the decision, one HMGET of the winner), wall-clock and
    thread CPU, the server's memory per entry, and the time Redis took to index the entries;
  - agreement of each top hit with exact (brute-force) search, for near-duplicate queries (those
    that could hit) and for all;
and, with `--namespaces K`, the same Redis lookup when the entries are spread over K namespaces
(a tenant's query then searches 1/K of them: the filter runs inside the KNN query).

Vectors and queries are bench/semcache_lookup.py's: real MiniLM embeddings of the QQP questions
(`--texts`, embedded once and cached in bench/.cache), perturbed copies beyond them; half the
queries are near duplicates (cosine ~0.95), half far.

  python bench/semcache_redis_search.py [--sizes 10000,100000] [--queries 300] \
      [--namespaces 100] [--texts ../shared/data/qqp_pairs_dev.jsonl] [--redis-url URL]

Without --redis-url it starts a private Valkey 9 + RediSearch server from the test-only wheels
(tests/toolkit/redis_server.py; requirements-dev.txt).
"""

import argparse
import hashlib
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[0] = str(ROOT)  # not bench/: its modules (profile.py) would shadow the stdlib
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "llmops.settings.test")

from bench.semcache_lookup import (  # noqa: E402
    base_vectors,
    build_index,
    exact_top1,
    make_vectors,
    pct,
    perturb,
    time_searches,
)

PREFIX = "semcache-bench-vs"


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def load_redis(store, vectors, namespaces: list[str]) -> float:
    """Write `vectors` as entry hashes (round-robin over `namespaces`) with every field a real
    entry has; return the seconds until the engine had indexed them all."""
    now = time.time()
    message = '{"role": "assistant", "content": "' + "An answer of average length. " * 6 + '"}'
    pipe = store.r.pipeline(transaction=False)
    t0 = time.perf_counter()
    for i, v in enumerate(vectors):
        ns = namespaces[i % len(namespaces)]
        pipe.hset(f"{PREFIX}:e:b{i}", mapping={
            "ns": ns, "tenant": "team:1", "team": "1", "model_scope": "auto",
            "prompt": f"stored question number {i} of the benchmark", "exact": f"x{i}",
            "message": message, "finish_reason": "stop", "model": "m", "usage": "{}",
            "cost": "0.0001", "created": repr(now), "expires": repr(now + 86400), "hits": "0",
            "last_hit": "", "vec": v.tobytes()})
        pipe.zadd(f"{PREFIX}:n:{ns}", {f"b{i}": now + 86400})
        if i % 5000 == 4999:
            pipe.execute()
        if i % 50_000 == 49_999:  # each HSET indexes its vector: the rate is the engine's
            rate = (i + 1) / (time.perf_counter() - t0)
            print(f"  {i + 1:,} entries written and indexed, {rate:.0f} per second "
                  f"(load average {os.getloadavg()[0]:.1f})", flush=True)
    pipe.execute()
    wait_indexed(store, len(vectors))
    return time.perf_counter() - t0


def wait_indexed(store, n: int) -> float:
    """Wait until the index holds `n` entries and indexes nothing more; return the seconds."""
    t0 = time.perf_counter()
    while True:
        info = store.r.ft(f"{PREFIX}:idx").info()
        if int(info["num_docs"]) >= n and str(info["indexing"]) in ("0", "0.0"):
            return time.perf_counter() - t0
        time.sleep(0.5)


def server_usec_per_search(store) -> float | None:
    """Server time per FT.SEARCH since the last CONFIG RESETSTAT (what the engine itself spent,
    apart from the scheduler's delays on a busy machine)."""
    stats = store.r.info("commandstats")
    row = next((v for k, v in stats.items() if k.lower() == "cmdstat_ft.search"), None)
    return float(row["usec_per_call"]) if row else None


def time_redis(engine, scope, queries) -> tuple[list, list, np.ndarray]:
    for q in queries[:20]:
        engine.find_semantic(scope, q, threshold=0.0, guards=False)
    engine.store.r.config_resetstat()
    times, cpu, found = [], [], []
    for q in queries:
        t, c = time.perf_counter(), time.thread_time()
        hit = engine.find_semantic(scope, q, threshold=0.0, guards=False)
        times.append((time.perf_counter() - t) * 1000)
        cpu.append((time.thread_time() - c) * 1000)
        found.append(hit.similarity if hit else -1.0)
    return times, cpu, np.asarray(found)


def compare_policies(engine, scope, queries, label: str) -> None:
    """Print the Redis time per search under each hybrid policy (what the size rule chooses
    between: semcache/store/redis_search.py)."""
    chosen = engine.search.policy(scope.namespace) or "engine's choice"
    for policy in ("ADHOC_BF", "BATCHES", ""):
        engine.search.policy = lambda namespace, p=policy: p
        times, _, _ = time_redis(engine, scope, queries)
        print(f"{label}: {policy or 'engine choice':<14} p50 {pct(times)[0]:.2f} ms, Redis "
              f"{server_usec_per_search(engine.store) / 1000:.2f} ms per search "
              f"(the gateway picks {chosen})", flush=True)
    del engine.search.policy  # back to the class's size rule


def agreement(found, truth, near) -> tuple[float, float]:
    return (float(np.mean(found[near] >= truth[near] - 1e-4)),
            float(np.mean(found >= truth - 1e-4)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--namespaces", type=int, default=100,
                        help="Also measure the entries spread over this many namespaces (0: no).")
    parser.add_argument("--compare-policies", action="store_true",
                        help="Also time every hybrid policy (ADHOC_BF, BATCHES, the engine's "
                             "choice) on each Redis case.")
    parser.add_argument("--spread-max", type=int, default=10_000,
                        help="Largest size measured spread over --namespaces.")
    parser.add_argument("--build-threads", type=int, default=2)
    parser.add_argument("--skip-process", action="store_true",
                        help="Measure the Redis search only (the in-process HNSW at 1M: "
                             "bench/semcache_lookup.py).")
    parser.add_argument("--keep", action="store_true",
                        help="Leave the last size's entries and index on the server (with "
                             "--redis-url), to query them again.")
    parser.add_argument("--reuse", action="store_true",
                        help="With --redis-url: query the entries a --keep run of the same "
                             "size left on the server instead of loading them again (an index "
                             "of the gateway's parameters over them: FT.DROPINDEX without DD "
                             "and the gateway makes one, re-indexing them).")
    parser.add_argument("--texts", default=str(ROOT.parent / "shared" / "data" /
                                              "qqp_pairs_dev.jsonl"))
    parser.add_argument("--redis-url", default="",
                        help="A Redis with a query engine, database 0 (default: start one).")
    args = parser.parse_args()
    import django

    django.setup()
    from semcache import index as semcache_index
    from semcache.namespaces import build_scope
    from semcache.services import CacheEngine
    from semcache.store import RedisStore

    server = None
    url = args.redis_url
    if not url:
        from tests.toolkit.redis_server import PrivateRedis

        server = PrivateRedis(search=True).start()
        url = server.url
    base = base_vectors(np.random.default_rng(0), Path(args.texts))
    print(f"base vectors: {len(base)} ({'real embeddings' if len(base) != 50_000 else 'random'})")
    params = {"connectivity": semcache_index.ANN_CONNECTIVITY,
              "expansion_add": semcache_index.ANN_EXPANSION_ADD,
              "expansion_search": semcache_index.ANN_EXPANSION_SEARCH}
    base_key = hashlib.sha256(base.tobytes()).hexdigest()[:12]
    scope = build_scope(team_id=1, messages=[{"role": "user", "content": "q"}],
                        requested_model="auto", answer_params={})
    rows = []
    try:
        sizes = [int(s) for s in args.sizes.split(",")]
        for n in sizes:
            scope = build_scope(team_id=1, messages=[{"role": "user", "content": "q"}],
                                requested_model="auto", answer_params={})
            rng = np.random.default_rng(n)
            vectors = make_vectors(base, n, rng)
            picks = rng.integers(0, n, args.queries)
            queries = np.concatenate([perturb(vectors[picks[: args.queries // 2]], rng),
                                      perturb(vectors[picks[args.queries // 2:]], rng, 0.05)])
            truth = np.asarray(exact_top1(vectors, queries))
            near = truth >= 0.8

            # In-process: what every gateway process holding the namespace pays.
            if not args.skip_process:
                before = rss_mb()
                index, _ = build_index(vectors, ann_min=semcache_index.ANN_MIN_ENTRIES,
                                       params=params, base_key=base_key,
                                       threads=args.build_threads)
                held = rss_mb() - before
                cpu: list[float] = []
                times, found = time_searches(index, queries, cpu)
                rows.append((n, "1", f"process ({index.mode})", *pct(times), *pct(cpu), None,
                             *agreement(found, truth, near), f"{held:.0f} MB / process", "-"))
                print(rows[-1], flush=True)
                del index

            # Redis: the gateway process holds nothing; the server holds the index.
            store = RedisStore(url=url, prefix=PREFIX, timeout=5)
            reuse = args.reuse and store.r.zcard(f"{PREFIX}:n:{scope.namespace}") == n
            if not reuse:
                store.flush()
            engine = CacheEngine(store, vector_index="auto")
            assert engine.search.kind == "redis", engine.search_fallback_reason
            used = int(store.r.info("memory")["used_memory"])
            indexed = wait_indexed(store, n) if reuse else load_redis(store, vectors,
                                                                      [scope.namespace])
            time_redis(engine, scope, queries[:20])  # warm: the client's imports and buffers
            rss = rss_mb()
            # Reused: the server holds only these entries (and this bench's few keys).
            per_entry = (int(store.r.info("memory")["used_memory"]) - (0 if reuse else used)) / n
            print(f"index {PREFIX}:idx: {engine.search.graph_parameters()}"
                  f"{' (reused entries)' if reuse else ''}", flush=True)
            if args.compare_policies:
                compare_policies(engine, scope, queries, f"{n:,} entries, 1 namespace")
            times, cpu, found = time_redis(engine, scope, queries)
            rows.append((n, "1", "redis", *pct(times), *pct(cpu), server_usec_per_search(store),
                         *agreement(found, truth, near),
                         f"{rss_mb() - rss:+.0f} MB / process; server {per_entry / 1024:.1f} "
                         f"KB / entry", f"{indexed:.0f} s"))
            print(rows[-1], flush=True)
            if args.keep and n == sizes[-1]:
                print(f"kept: prefix {PREFIX}, namespace {scope.namespace}", flush=True)
                break
            store.flush()

            if args.namespaces and n <= args.spread_max:
                # Another namespace than the one just purged: the engine's garbage collector
                # drops purged entries from a tag's postings some seconds later, and until then
                # a search of that tag still walks them.
                scope = build_scope(team_id=2, messages=[{"role": "user", "content": "q"}],
                                    requested_model="auto", answer_params={})
                spread = [scope.namespace] + [f"{i:064x}" for i in range(1, args.namespaces)]
                indexed = load_redis(store, vectors, spread)
                own = vectors[np.arange(0, n, len(spread))]  # the queried namespace's entries
                picks = rng.integers(0, len(own), args.queries)
                queries = np.concatenate([perturb(own[picks[: args.queries // 2]], rng),
                                          perturb(own[picks[args.queries // 2:]], rng, 0.05)])
                truth_ns = np.asarray(exact_top1(own, queries))
                near_ns = truth_ns >= 0.8
                if args.compare_policies:
                    compare_policies(engine, scope, queries,
                                     f"{n:,} entries, {len(spread)} namespaces")
                times, cpu, found = time_redis(engine, scope, queries)
                rows.append((n, str(len(spread)), "redis", *pct(times), *pct(cpu),
                             server_usec_per_search(store), *agreement(found, truth_ns, near_ns),
                             "-", f"{indexed:.0f} s"))
                print(rows[-1], flush=True)
                store.flush()
            store.r.execute_command("FT.DROPINDEX", f"{PREFIX}:idx")
    finally:
        if server is not None:
            server.stop()
    print("\n| entries | namespaces | search | p50 ms | p99 ms | client CPU p50 / p99 ms | "
          "server ms per search | agreement near / all | memory | indexing |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for n, k, kind, p50, p99, c50, c99, server_us, agree, agree_all, memory, indexing in rows:
        server_ms = "-" if server_us is None else f"{server_us / 1000:.2f}"
        print(f"| {n:,} | {k} | {kind} | {p50:.2f} | {p99:.2f} | {c50:.2f} / {c99:.2f} | "
              f"{server_ms} | {agree:.3f} / {agree_all:.3f} | {memory} | {indexing} |")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS of this process: {peak:.0f} MB")


if __name__ == "__main__":
    main()
