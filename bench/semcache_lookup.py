"""Benchmark: semantic cache lookup time (embedding excluded) at 10k, 100k and 1M entries.

Prints median and p99 of
  - index: NamespaceIndex search + decision (what a lookup costs in-process),
  - full:  CacheEngine.find_semantic on Redis (event-log sync + search + decision + HMGET),
  - seed:  the seed design (KEYS semantic_cache:* + GET each + JSON decode + cosine loop),
           up to the size it can bear,
and the agreement of the index's top hit with exact (brute-force) search.

Vectors are realistic: real MiniLM embeddings of the questions of ../shared/data's QQP pairs
(embedded once, cached in bench/.cache), else random ones, with extra entries made by perturbing
real ones. Queries are stored vectors perturbed to cosine ~0.95 (a near-duplicate question) and
fresh ones. HNSW graphs are built once per (data, size, M, expansion_add) and cached in
bench/.cache/hnsw (the 1M graph takes ~20 minutes on 2 cores); `--ef` sweeps expansion_search
on them, with wall-clock and thread-CPU percentiles.

  python bench/semcache_lookup.py [--sizes 10000,100000,1000000] [--queries 300] [--ef 64,128]
Needs Redis for the full and seed columns (SEMCACHE_BENCH_REDIS_URL, default db 3).
"""

import argparse
import glob
import hashlib
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[0] = str(ROOT)  # not bench/: its modules (profile.py) would shadow the stdlib
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "llmops.settings.test")
CACHE = ROOT / "bench" / ".cache"


def base_vectors(rng, texts_path: Path) -> np.ndarray:
    """Return real MiniLM embeddings of questions: the unique questions of `texts_path`, embedded
    once (cached in bench/.cache), else `manage.py eval_cache`'s cached ones, else random."""
    if texts_path.exists():
        texts = sorted({json.loads(line)[key] for line in texts_path.open()
                        for key in ("text_a", "text_b")})
        digest = hashlib.sha256("\x1e".join(texts).encode()).hexdigest()[:16]
        path = CACHE / f"lookup-base-{digest}.npy"
        if not path.exists():
            from semcache.embedder import get_embedder

            embedder = get_embedder()
            vectors = np.concatenate([embedder.embed_sync(texts[i:i + 256])
                                      for i in range(0, len(texts), 256)])
            CACHE.mkdir(parents=True, exist_ok=True)
            np.save(path, vectors)
        return np.load(path)
    files = sorted(glob.glob(str(CACHE / "eval-embeddings-*.npy")), key=os.path.getsize)
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


def build_index(vectors, *, ann_min, params, base_key, threads):
    """Return (index, build seconds): built once per (data, size, parameters), then reloaded
    from bench/.cache/hnsw (a 1M-entry graph takes many minutes on 2 cores)."""
    from semcache.index import NamespaceIndex

    n = len(vectors)
    key = f"{base_key}-n{n}-min{ann_min}-M{params['connectivity']}-ea{params['expansion_add']}"
    path = CACHE / "hnsw" / f"{key}.usearch"
    if n >= ann_min and path.exists() and Path(f"{path}.meta.npz").exists():
        index = NamespaceIndex.restore(str(path))
        index._ann.expansion_search = params["expansion_search"]  # a search-time setting
        return index, float(json.loads(Path(f"{path}.json").read_text())["build_s"])
    index = NamespaceIndex(ann_min_entries=ann_min, **params)
    t0 = time.perf_counter()
    for start in range(0, n, 50_000):
        chunk = vectors[start:start + 50_000]
        index.add_many([f"e{i}" for i in range(start, start + len(chunk))], chunk,
                       [f"stored question {i}" for i in range(start, start + len(chunk))],
                       [1e12] * len(chunk), threads=threads)
    build = time.perf_counter() - t0
    if index.mode == "hnsw":
        path.parent.mkdir(parents=True, exist_ok=True)
        index.save(str(path))
        Path(f"{path}.json").write_text(json.dumps({"build_s": build, "threads": threads}))
    return index, build


def time_searches(index, queries, cpu: list | None = None):
    """Return per-query times (ms) of search + decision, and the top hit's similarity.

    `cpu` receives the thread CPU time of each query: on a shared machine the wall-clock p99
    mostly measures how long the scheduler kept the thread off a core, the CPU time what the
    lookup itself costs.
    """
    from semcache.decision import decide

    for q in queries[:20]:  # warm caches: the first searches after a load fault pages in
        index.search(q, 4)
    times, found = [], []
    for q in queries:
        t, c = time.perf_counter(), time.thread_time()
        candidates = index.search(q, 4)
        decide("stored question x", candidates, threshold=0.9)
        times.append((time.perf_counter() - t) * 1000)
        if cpu is not None:
            cpu.append((time.thread_time() - c) * 1000)
        found.append(candidates[0].similarity if candidates else -1.0)
    return times, np.asarray(found)


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
    parser.add_argument("--connectivity", type=int, default=0,
                        help="HNSW M (default: semcache.index.ANN_CONNECTIVITY).")
    parser.add_argument("--expansion-add", type=int, default=0,
                        help="HNSW build ef (default: semcache.index.ANN_EXPANSION_ADD).")
    parser.add_argument("--ef", default="64,128,256,512",
                        help="expansion_search values to sweep on each HNSW index.")
    parser.add_argument("--build-threads", type=int, default=2,
                        help="Threads for the one-off bulk build (cached afterwards).")
    parser.add_argument("--texts", default=str(ROOT.parent / "shared" / "data" /
                                              "qqp_pairs_dev.jsonl"),
                        help="Questions to embed as base vectors (JSONL with text_a/text_b).")
    args = parser.parse_args()
    import django

    django.setup()
    from semcache import index as semcache_index

    url = os.environ.get("SEMCACHE_BENCH_REDIS_URL", "redis://127.0.0.1:6379/3")
    base = base_vectors(np.random.default_rng(0), Path(args.texts))
    print(f"base vectors: {len(base)} ({'real embeddings' if len(base) != 50_000 else 'random'})")
    params = {"connectivity": args.connectivity or semcache_index.ANN_CONNECTIVITY,
              "expansion_add": args.expansion_add or semcache_index.ANN_EXPANSION_ADD,
              "expansion_search": semcache_index.ANN_EXPANSION_SEARCH}
    print(f"HNSW parameters: {params}")
    header = (f"{'entries':>9} {'mode':>6} {'build s':>8} {'index p50':>10} {'index p99':>10} "
              f"{'agree':>6} {'all':>6} {'full p50':>9} {'full p99':>9} {'seed p50':>9} "
              f"{'seed p99':>9}")
    print(header)
    base_key = hashlib.sha256(base.tobytes()).hexdigest()[:12]
    sweeps = []
    for n in [int(s) for s in args.sizes.split(",")]:
        rng = np.random.default_rng(n)  # per size: the same data whatever else runs
        vectors = make_vectors(base, n, rng)
        picks = rng.integers(0, n, args.queries)
        queries = np.concatenate([perturb(vectors[picks[: args.queries // 2]], rng),
                                  perturb(vectors[picks[args.queries // 2:]], rng, 0.05)])
        index, build = build_index(vectors, ann_min=args.ann_min, params=params,
                                   base_key=base_key, threads=args.build_threads)
        times, found = time_searches(index, queries)
        truth = np.asarray(exact_top1(vectors, queries))
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
        print(row, flush=True)
        if index.mode == "hnsw":
            for ef in [int(x) for x in args.ef.split(",") if x]:
                index._ann.expansion_search = ef
                cpu: list[float] = []
                t2, got = time_searches(index, queries, cpu)
                p50, p99 = pct(t2)
                c50, c99 = pct(cpu)
                sweeps.append(f"{n:>9} {ef:>6} {p50:>8.3f} {p99:>8.3f} {c50:>8.3f} {c99:>8.3f} "
                              f"{np.mean(got[near] >= truth[near] - 1e-5):>6.3f} "
                              f"{np.mean(got >= truth - 1e-5):>6.3f}")
                print(f"{'':>9} ef={ef:<4} search p50 {p50:.3f} p99 {p99:.3f} agree(near) "
                      f"{np.mean(got[near] >= truth[near] - 1e-5):.3f} agree(all) "
                      f"{np.mean(got >= truth - 1e-5):.3f}", flush=True)
        del index
    if sweeps:
        print(f"\nexpansion_search sweep (M {params['connectivity']}, expansion_add "
              f"{params['expansion_add']}; wall and thread-CPU ms)\n{'entries':>9} {'ef':>6} "
              f"{'p50':>8} {'p99':>8} {'cpu p50':>8} {'cpu p99':>8} {'agree':>6} {'all':>6}")
        print("\n".join(sweeps))
    print("times in ms; agree = top hit as similar as exact search's, for queries whose exact "
          "best is >= 0.8 (could hit) and for all; seed: 5 queries")


if __name__ == "__main__":
    main()
