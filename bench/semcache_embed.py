"""Benchmark: embedding throughput at concurrency 1, 8, 32, with and without micro-batching,
on each backend (torch = sentence-transformers, onnx = ONNX Runtime on the exported model).

Without batching each request runs its own encode on a worker thread (asyncio.to_thread); with
batching, requests queue for the embedder thread, which encodes whatever queued up as one batch.
Also prints the cost of one query alone and per query in a batch of 32 (direct encodes), how
far the backends' vectors are apart on the same texts, and what the pooled intermediate layers
add to a pass (`embed_layers_sync`, which the batching thread runs, against `embed_sync`,
alternated on the same texts so machine load hits both alike).

  python bench/semcache_embed.py [--requests 256] [--levels 1,8,32] [--backends torch,onnx]
"""

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[0] = str(ROOT)  # not bench/: its modules (profile.py) would shadow the stdlib
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "llmops.settings.test")

TEXTS = [f"How do I {verb} {thing} in {place}?" for verb in ("find", "fix", "learn", "cook")
         for thing in ("pasta", "a bike", "python", "taxes", "a garden")
         for place in ("Paris", "2024", "winter", "a week", "my city")]


async def run(embedder, *, concurrency, requests, batching):
    latencies = []
    queue = list(range(requests))

    async def client():
        while queue:
            i = queue.pop()
            t = time.perf_counter()
            await embedder.embed(TEXTS[i % len(TEXTS)] + f" #{i}", batching=batching)
            latencies.append((time.perf_counter() - t) * 1000)

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    return requests / elapsed, float(np.median(latencies)), float(np.percentile(latencies, 99))


def direct_ms(embedder, *, batch: int, rounds: int) -> float:
    """Return the median ms per query of direct encodes of `batch` texts."""
    samples = []
    for r in range(rounds):
        texts = [TEXTS[(r * batch + i) % len(TEXTS)] + f" #{r}" for i in range(batch)]
        t = time.perf_counter()
        embedder.embed_sync(texts)
        samples.append((time.perf_counter() - t) * 1000 / batch)
    return float(np.median(samples))


def layers_overhead_ms(embedder, *, batch: int, rounds: int) -> tuple[float, float]:
    """Return the median ms per query of `embed_sync` and of `embed_layers_sync` on the same
    `batch` texts, alternating the two (which goes first alternates too)."""
    plain, layered = [], []
    for r in range(rounds):
        texts = [TEXTS[(r * batch + i) % len(TEXTS)] + f" #{r}" for i in range(batch)]
        calls = [(embedder.embed_sync, plain), (embedder.embed_layers_sync, layered)]
        for encode, samples in calls if r % 2 == 0 else calls[::-1]:
            t = time.perf_counter()
            encode(texts)
            samples.append((time.perf_counter() - t) * 1000 / batch)
    return float(np.median(plain)), float(np.median(layered))


async def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=256)
    parser.add_argument("--levels", default="1,8,32")
    parser.add_argument("--backends", default="torch,onnx")
    parser.add_argument("--threads", type=int, default=0,
                        help="Intra-op threads per encode (default: SEMCACHE_EMBED_THREADS).")
    args = parser.parse_args()
    import django

    django.setup()
    from semcache.embedder import Embedder

    embedders = {}
    for name in args.backends.split(","):
        embedders[name] = Embedder(backend=name, threads=args.threads or None)
        embedders[name].warm_up()
        assert embedders[name].backend == name, f"{name} backend unavailable"
    if {"torch", "onnx"} <= embedders.keys():
        a = embedders["onnx"].embed_sync(TEXTS)
        b = embedders["torch"].embed_sync(TEXTS)
        print(f"onnx vs torch on {len(TEXTS)} texts: max |diff| {np.max(np.abs(a - b)):.1e}, "
              f"min cosine {np.min(np.sum(a * b, axis=1)):.7f}")
    print(f"\n{'backend':>7} {'single query ms':>16} {'per query, batch of 32 ms':>26}")
    for name, embedder in embedders.items():
        single = direct_ms(embedder, batch=1, rounds=60)
        batched = direct_ms(embedder, batch=32, rounds=8)
        print(f"{name:>7} {single:>16.2f} {batched:>26.2f}", flush=True)
    print(f"\n{'backend':>7} {'batch':>6} {'embedding ms':>13} {'+ layers ms':>12} "
          f"{'added':>8}")
    for name, embedder in embedders.items():
        for batch, rounds in ((1, 200), (32, 16)):
            plain, layered = layers_overhead_ms(embedder, batch=batch, rounds=rounds)
            print(f"{name:>7} {batch:>6} {plain:>13.3f} {layered:>12.3f} "
                  f"{(layered - plain) / plain:>+8.1%}", flush=True)
    print(f"\n{'backend':>7} {'concurrency':>11} {'batching':>9} {'req/s':>8} {'p50 ms':>8} "
          f"{'p99 ms':>8} {'encodes':>8}")
    for name, embedder in embedders.items():
        for level in [int(x) for x in args.levels.split(",")]:
            for batching in (False, True):
                before = embedder.batches
                rps, p50, p99 = await run(embedder, concurrency=level, requests=args.requests,
                                          batching=batching)
                batches = embedder.batches - before if batching else args.requests
                print(f"{name:>7} {level:>11} {('on' if batching else 'off'):>9} {rps:>8.0f} "
                      f"{p50:>8.2f} {p99:>8.2f} {batches:>8}", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
