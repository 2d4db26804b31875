"""Benchmark: semantic cache lookup time (embedding excluded) at 10k, 100k and 1M entries.

Prints median and p99 of
  - index: NamespaceIndex search + decision (what a lookup costs in-process),
  - full:  CacheEngine.find_semantic on Redis (event-log sync + search + decision + HMGET),
  - seed:  the seed design (KEYS semantic_cache:* + GET each + JSON decode + cosine loop),
           up to the size it can bear,
and the agreement of the index's top hit with exact (brute-force) search.

Vectors are realistic: real MiniLM embeddings of questions when bench/.cache has them (see
`manage.py eval_cache`), else random ones, with extra entries made by perturbing real ones.
Queries are stored vectors perturbed to cosine ~0.95 (a near-duplicate question) and fresh ones.

  python bench/semcache_lookup.py [--sizes 10000,100000,1000000] [--queries 300]
Needs Redis for the full and seed columns (SEMCACHE_BENCH_REDIS_URL, default db 3).
"""

import argparse
import glob
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[0] = str(ROOT)  # not bench/: its modules (profile.py) would shadow the stdlib
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "llmops.settings.test")


def base_vectors(rng) -> np.ndarray:
    files = sorted(glob.glob(str(ROOT / "bench" / ".cache" / "eval-embeddings-*.npy")),
                   key=os.path.getsize)
    if files:
        return np.load(files[-1])
    vectors = rng.standard_normal((50_000, 384)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def make_vectors(base, n, rng) -> np.ndarray:
    if n <= len(base):
        return base[rng.permutation(len(base))[:n]].copy()
    extra = base[rng.integers(0, len(base), n - len(base))]
    noise = rng.standard_normal(extra.shape).astype(np.float32) * 0.035
    extra = extra + noise
    extra /= np.linalg.norm(extra, axis=1, keepdims=True)
    return np.concatenate([base, extra])


def perturb(vectors, rng, scale=0.016) -> np.ndarray:
    out = vectors + rng.standard_normal(vectors.shape).astype(np.float32) * scale
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def pct(samples_ms):
    arr = np.asarray(samples_ms)
    return float(np.median(arr)), float(np.percentile(arr, 99))


def bench_index(vectors, queries, *, ann_min):
    from semcache.decision import decide
    from semcache.index import NamespaceIndex

    n = len(vectors)
    index = NamespaceIndex(ann_min_entries=ann_min)
    t0 = time.perf_counter()
    for start in range(0, n, 50_000):
        chunk = vectors[start:start + 50_000]
        index.add_many([f"e{i}" for i in range(start, start + len(chunk))], chunk,
                       [f"stored question {i}" for i in range(start, start + len(chunk))],
                       [1e12] * len(chunk))
    build = time.perf_counter() - t0
    times, found = [], []
    for q in queries:
        t = time.perf_counter()
        candidates = index.search(q, 4)
        decide("stored question x", candidates, threshold=0.9)
        times.append((time.perf_counter() - t) * 1000)
        found.append(candidates[0].similarity if candidates else -1.0)
    return index, build, times, found


def exact_top1(vectors, queries):
    """Return the best similarity per query (ties between identical vectors are agreement)."""
    out = []
    for start in range(0, len(queries), 64):
        sims = queries[start:start + 64] @ vectors.T
        out.extend(float(x) for x in np.max(sims, axis=1))
    return out


def bench_full(vectors, queries, url, prefix):
    from semcache.namespaces import build_scope
    from semcache.services import CacheEngine
    from semcache.store import RedisStore

    store = RedisStore(url=url, prefix=prefix, max_events=1000)
    store.flush()
    engine = CacheEngine(store)
    scope = build_scope(team_id=1, messages=[{"role": "user", "content": "q"}],
                        requested_model="auto", answer_params={})
    pipe = store.r.pipeline(transaction=False)
    now = time.time()
    for i, v in enumerate(vectors):
        key = f"{prefix}:e:b{i}"
        pipe.hset(key, mapping={"ns": scope.namespace, "prompt": f"stored question {i}",
                                "vec": v.tobytes(), "expires": repr(now + 3600),
                                "message": "{}", "usage": "{}", "exact": f"x{i}"})
        pipe.zadd(f"{prefix}:n:{scope.namespace}", {f"b{i}": now + 3600})
        if i % 5000 == 4999:
            pipe.execute()
    pipe.execute()
    t0 = time.perf_counter()
    engine.registry.index_for(scope.namespace)
    load = time.perf_counter() - t0
    times = []
    for q in queries:
        t = time.perf_counter()
        engine.find_semantic(scope, q, threshold=0.9, guards=False)
        times.append((time.perf_counter() - t) * 1000)
    store.flush()
    return load, times


def bench_seed(vectors, queries, url, prefix):
    """The seed design, faithfully: KEYS, GET every entry, json-decode, cosine one by one."""
    import redis

    r = redis.Redis.from_url(url)
    pattern = f"{prefix}:semantic_cache:*"
    pipe = r.pipeline(transaction=False)
    for i, v in enumerate(vectors):
        pipe.set(f"{prefix}:semantic_cache:{i}", json.dumps(
            {"embedding": v.tolist(), "response": "answer", "model": "m", "temperature": 0}))
        if i % 2000 == 1999:
            pipe.execute()
    pipe.execute()
    times = []
    for q in queries:
        t = time.perf_counter()
        best_sim = -1.0
        for key in r.keys(pattern):
            entry = json.loads(r.get(key))
            e = np.asarray(entry["embedding"], dtype=np.float32)
            sim = float(np.dot(q, e) / (np.linalg.norm(q) * np.linalg.norm(e)))
            if sim > best_sim:
                best_sim = sim
        times.append((time.perf_counter() - t) * 1000)
    keys = list(r.scan_iter(match=pattern, count=5000))
    for start in range(0, len(keys), 5000):
        r.delete(*keys[start:start + 5000])
    return times


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--seed-max", type=int, default=10_000,
                        help="Largest size the seed design is measured at.")
    parser.add_argument("--full-max", type=int, default=100_000,
                        help="Largest size the full Redis path is measured at.")
    parser.add_argument("--ann-min", type=int, default=20_000)
    args = parser.parse_args()
    import django

    django.setup()
    url = os.environ.get("SEMCACHE_BENCH_REDIS_URL", "redis://127.0.0.1:6379/3")
    rng = np.random.default_rng(0)
    base = base_vectors(rng)
    print(f"base vectors: {len(base)} ({'real embeddings' if len(base) != 50_000 else 'random'})")
    header = (f"{'entries':>9} {'mode':>6} {'build s':>8} {'index p50':>10} {'index p99':>10} "
              f"{'agree':>6} {'all':>6} {'full p50':>9} {'full p99':>9} {'seed p50':>9} "
              f"{'seed p99':>9}")
    print(header)
    rows = []
    for n in [int(s) for s in args.sizes.split(",")]:
        vectors = make_vectors(base, n, rng)
        picks = rng.integers(0, n, args.queries)
        queries = np.concatenate([perturb(vectors[picks[: args.queries // 2]], rng),
                                  perturb(vectors[picks[args.queries // 2:]], rng, 0.05)])
        index, build, times, found = bench_index(vectors, queries, ann_min=args.ann_min)
        truth = np.asarray(exact_top1(vectors, queries))
        found = np.asarray(found)
        near = truth >= 0.8  # queries that could be hits: where agreement matters
        agree = float(np.mean(found[near] >= truth[near] - 1e-5))
        agree_all = float(np.mean(found >= truth - 1e-5))
        ip50, ip99 = pct(times)
        full = seed = ("-", "-")
        if n <= args.full_max:
            _, ftimes = bench_full(vectors, queries, url, "semcache-bench")
            full = tuple(f"{x:.3f}" for x in pct(ftimes))
        if n <= args.seed_max:
            stimes = bench_seed(vectors, queries[:5], url, "semcache-bench-seed")
            seed = tuple(f"{x:.0f}" for x in pct(stimes))
        row = (f"{n:>9} {index.mode:>6} {build:>8.1f} {ip50:>10.3f} {ip99:>10.3f} {agree:>6.3f} "
               f"{agree_all:>6.3f} {full[0]:>9} {full[1]:>9} {seed[0]:>9} {seed[1]:>9}")
        rows.append(row)
        print(row, flush=True)
        if index.mode == "hnsw":
            for ef in (128, 256):
                index._ann.expansion_search = ef
                t2 = []
                got = []
                for q in queries:
                    t = time.perf_counter()
                    c = index.search(q, 4)
                    t2.append((time.perf_counter() - t) * 1000)
                    got.append(c[0].similarity if c else -1.0)
                got = np.asarray(got)
                p50, p99 = pct(t2)
                print(f"{'':>9} ef={ef:<4} search p50 {p50:.3f} p99 {p99:.3f} agree(near) "
                      f"{np.mean(got[near] >= truth[near] - 1e-5):.3f} agree(all) "
                      f"{np.mean(got >= truth - 1e-5):.3f}", flush=True)
        del index
    print("times in ms; agree = top hit as similar as exact search's, for queries whose exact "
          "best is >= 0.8 (could hit) and for all; seed: 5 queries")


if __name__ == "__main__":
    main()
