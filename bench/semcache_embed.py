"""Benchmark: embedding throughput at concurrency 1, 8, 32, with and without micro-batching.

Without batching each request runs its own encode on a worker thread (asyncio.to_thread); with
batching, requests queue for the embedder thread, which encodes whatever queued up as one batch.

  python bench/semcache_embed.py [--requests 256] [--levels 1,8,32]
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


async def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=256)
    parser.add_argument("--levels", default="1,8,32")
    args = parser.parse_args()
    import django

    django.setup()
    from semcache.embedder import get_embedder

    embedder = get_embedder()
    embedder.warm_up()
    a = embedder.embed_sync(TEXTS[:8])
    b = np.stack([embedder.embed_sync([t])[0] for t in TEXTS[:8]])
    print(f"batched vs single encode: max |cos - 1| = {float(np.max(1 - np.sum(a * b, 1))):.2e}")
    print(f"{'concurrency':>11} {'batching':>9} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} "
          f"{'batches':>8}")
    for level in [int(x) for x in args.levels.split(",")]:
        for batching in (False, True):
            before = embedder.batches
            rps, p50, p99 = await run(embedder, concurrency=level, requests=args.requests,
                                      batching=batching)
            batches = embedder.batches - before if batching else args.requests
            print(f"{level:>11} {('on' if batching else 'off'):>9} {rps:>8.0f} {p50:>8.2f} "
                  f"{p99:>8.2f} {batches:>8}", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
