"""Benchmark: cache-hit and cache-miss throughput and server CPU per request with 1, 2 and 3
gateway replicas on this machine, the vector index in Redis' query engine vs in each process.

    nice -n 10 .venv/bin/python -m bench.replicas [--layouts 1x2,2x1,3x1] [--connections 12]
        [--seconds 10] [--stores redis,process]

Each layout is replicas × workers per replica: separate `python -m llmops.serve` servers on
separate ports, over one PostgreSQL database and one Redis (a private Valkey 9 + RediSearch from
the test-only wheels, tests/toolkit/redis_server.py), sharing one set of key prefixes, as a
deployment's replicas do. `--stores`: `redis` (SEMCACHE_VECTOR_INDEX=auto: the index lives in
Redis) and `process` (SEMCACHE_VECTOR_INDEX=process: every process holds the index and follows
the entry stream, so each entry stored anywhere is indexed in every process).

The load is split evenly over the replicas (one `wrk` per replica, the connections divided):
  * miss — distinct prompts never sent before (embedding, vector search, routing, budgets,
    upstream mock at 0 ms, ledger, the store write and, with `process`, every other process's
    indexing of it);
  * hit — 100 prompts stored beforehand through the first replica, then repeated (exact hits:
    auth, budgets, ledger, the hash lookup).
CPU per request = user + system CPU of every replica's process tree during the cell ÷ requests,
printed apart from the Redis server's CPU for the same window (with `redis` the vector search
runs there). Load averages are printed beside each cell; numbers are never asserted.
"""

import argparse
import contextlib
import os
import sys
import threading
import time
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _redis_cpu(client) -> float:
    info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


HIT_PROMPTS = 100


def _store_through(target, model: str, prompts: list[str]) -> None:
    """Send each prompt once through `target` so that its answer is stored."""
    from concurrent.futures import ThreadPoolExecutor

    import httpx

    with httpx.Client(timeout=60, headers={"Authorization": target.auth,
                                           "Content-Type": "application/json"}) as http:
        def send(prompt: str) -> None:
            from bench.loadgen import chat_body

            http.post(target.chat_url, content=chat_body(model, prompt)).raise_for_status()

        with ThreadPoolExecutor(4) as pool:
            list(pool.map(send, prompts))


def _split(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def _measure(targets, bodies_per_target, *, connections: int, seconds: float, redis_client,
             collect: bool = True) -> dict:
    from bench.common import tree_cpu_seconds, wait_idle
    from bench.loadgen import run_wrk

    for t in targets:
        wait_idle(t.pid)
    conns = _split(connections, len(targets))
    results: list = [None] * len(targets)
    cpu0 = sum(tree_cpu_seconds(t.pid) for t in targets)
    rcpu0 = _redis_cpu(redis_client)
    load = os.getloadavg()

    def one(i: int) -> None:
        results[i] = run_wrk(targets[i].chat_url, bodies_per_target[i], connections=conns[i],
                             seconds=seconds, auth=targets[i].auth, collect=collect)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(targets))]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    cpu = sum(tree_cpu_seconds(t.pid) for t in targets) - cpu0
    rcpu = _redis_cpu(redis_client) - rcpu0
    requests = sum(r.requests for r in results)
    cache: dict[str, int] = {}
    for r in results:
        for k, v in (r.cache or {}).items():
            cache[k] = cache.get(k, 0) + v
    return {"rps": sum(r.rps for r in results), "requests": requests,
            "errors": sum(r.errors for r in results),
            # Per-replica percentiles cannot be merged exactly: the requests-weighted p50 and
            # the worst replica's p99.
            "p50": sum(r.p50_ms * r.requests for r in results) / max(requests, 1),
            "p99": max(r.p99_ms for r in results),
            "cpu_ms": cpu * 1000 / max(requests, 1), "redis_cpu_ms": rcpu * 1000 / max(requests, 1),
            "cache": cache, "load": " ".join(f"{x:.2f}" for x in load)}


@contextlib.contextmanager
def _replicas(key: str, replicas: int, workers: int, store: str):
    """Start `replicas` servers sharing one set of Redis key prefixes."""
    from bench.servers import llmops

    prefix = f"bench-replicas-{uuid.uuid4().hex[:8]}"
    env = {"CACHE_KEY_PREFIX": f"{prefix}-llmops", "SEMCACHE_KEY_PREFIX": f"{prefix}-semcache",
           "ROUTING_REDIS_PREFIX": f"{prefix}-routing",
           "SEMCACHE_VECTOR_INDEX": "auto" if store == "redis" else "process",
           "PROMETHEUS_MULTIPROC_DIR": ""}
    with contextlib.ExitStack() as stack:
        targets = []
        for i in range(replicas):
            extra = dict(env)
            if workers > 1:
                extra.pop("PROMETHEUS_MULTIPROC_DIR")
            targets.append(stack.enter_context(llmops(
                key, semantic_cache=True, workers=workers, name=f"replica-{store}-{i}",
                extra_env=extra)))
        yield targets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layouts", default="1x2,2x1,3x1",
                        help="replicas x workers per replica, comma-separated.")
    parser.add_argument("--stores", default="redis,process")
    parser.add_argument("--connections", type=int, default=12,
                        help="Total concurrent connections, split over the replicas.")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--postgres", default="postgres://postgres@127.0.0.1:5432/llmops")
    args = parser.parse_args()

    sys.path.insert(0, ROOT)
    from tests.toolkit.redis_server import PrivateRedis

    redis_server = PrivateRedis(search=True).start()
    os.environ["BENCH_REDIS_URL"] = redis_server.url
    os.environ["BENCH_DATABASE_URL"] = args.postgres
    import redis

    from bench.common import raise_open_files_limit
    from bench.loadgen import chat_body
    from bench.prompts import PromptPool
    from bench.servers import bench_run, mock_upstream, prepare_llmops

    raise_open_files_limit()
    client = redis.Redis.from_url(redis_server.url)
    pool = PromptPool()
    model = "bench-d0"
    rows = []
    try:
        with bench_run(), mock_upstream() as mock:
            key = prepare_llmops(mock)
            for store in args.stores.split(","):
                for layout in args.layouts.split(","):
                    replicas, workers = (int(x) for x in layout.split("x"))
                    with _replicas(key, replicas, workers, store) as targets:
                        # Warm every process (imports, the embedder, connections) on misses.
                        warm = [[chat_body(model, p) for p in pool.take(300)] for _ in targets]
                        _measure(targets, warm, connections=args.connections,
                                 seconds=args.warmup, redis_client=client)
                        miss = [[chat_body(model, p) for p in pool.take(
                            int(60 * args.seconds) + 300)] for _ in targets]
                        r = _measure(targets, miss, connections=args.connections,
                                     seconds=args.seconds, redis_client=client)
                        rows.append((store, layout, "miss", r))
                        print(store, layout, "miss", r, flush=True)
                        prompts = pool.take(HIT_PROMPTS)
                        _store_through(targets[0], model, prompts)
                        time.sleep(1.0)  # the write-behind store lands
                        hot = [chat_body(model, p) for p in prompts]
                        r = _measure(targets, [hot] * len(targets), connections=args.connections,
                                     seconds=args.seconds, redis_client=client)
                        rows.append((store, layout, "hit", r))
                        print(store, layout, "hit", r, flush=True)
    finally:
        redis_server.stop()
    print("\n| index | replicas × workers | workload | req/s | p50 ms | p99 ms (worst replica) | "
          "errors | gateway CPU ms/req | Redis CPU ms/req | cache | load |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---|---|")
    for store, layout, workload, r in rows:
        total = sum(r["cache"].values()) or 1
        cache = ", ".join(f"{k} {v / total:.0%}" for k, v in sorted(r["cache"].items()))
        print(f"| {store} | {layout.replace('x', ' × ')} | {workload} | {r['rps']:.1f} | "
              f"{r['p50']:.1f} | {r['p99']:.1f} | {r['errors']} | {r['cpu_ms']:.2f} | "
              f"{r['redis_cpu_ms']:.2f} | {cache} | {r['load']} |")


if __name__ == "__main__":
    main()
