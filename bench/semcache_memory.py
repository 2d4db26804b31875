"""Memory of the semantic cache under a soak-shaped load, in-process (no HTTP): where growth lives.

The soak's mix through `semcache.gateway` directly: 50 concurrent clients, half repeat one of
200 popular prompts (stored on first sight, then exact hits), half send distinct prompts with
`Cache-Control: no-store` (an embedding and a semantic miss, nothing stored). Prints the RSS
every few seconds and, with --tracemalloc, the Python allocations that grew the most between the
end of warm-up and the end, so a leak in Python code shows up by file and line while native
growth (model runtime, malloc arenas) shows as RSS growth with flat Python allocations.

  python bench/semcache_memory.py [--seconds 75] [--warmup 15] [--backend onnx|torch]
      [--tracemalloc]   (Redis: SEMCACHE_BENCH_REDIS_URL, default db 13)
"""

import argparse
import asyncio
import os
import sys
import time
import tracemalloc
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[0] = str(ROOT)  # not bench/: its modules (profile.py) would shadow the stdlib
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "llmops.settings.test")

POPULAR = 200


def rss_mb() -> float:
    """Return this process's resident memory in MB."""
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


async def soak(*, seconds: float, clients: int, prompts: list[str], popular: list[str],
               on_sample) -> int:
    from decimal import Decimal

    from llmops.gateway.context import CacheControl, RequestContext
    from llmops.principal import Principal
    from semcache.gateway import cache_lookup, cache_store

    principal = Principal(api_key_id=1, key_prefix="sk-bench", user_id=1, team_id=1,
                          team_name="bench", tier="standard")
    deadline = time.monotonic() + seconds
    done = 0
    cursor = 0

    async def client(i: int) -> None:
        nonlocal done, cursor
        turn = i
        while time.monotonic() < deadline:
            fresh = turn % 2 == 1
            if fresh:
                text, cursor = prompts[cursor % len(prompts)], cursor + 1
            else:
                text = popular[(turn // 2) % len(popular)]
            turn += 1
            messages = [{"role": "user", "content": text}]
            ctx = RequestContext(
                request_id=uuid.uuid4().hex, principal=principal,
                body={"model": "auto", "messages": messages}, messages=messages,
                requested_model="auto", params={}, metadata={}, headers={},
                cache_control=CacheControl(no_cache=False, no_store=fresh),
            )
            if await cache_lookup(ctx) is None and not fresh:
                await cache_store(ctx, message={"role": "assistant", "content": "answer " * 40},
                                  finish_reason="stop", model="bench", usage={},
                                  cost=Decimal("0.001"))
            done += 1

    async def sampler() -> None:
        while time.monotonic() < deadline:
            await asyncio.sleep(5)
            on_sample(done)

    await asyncio.gather(sampler(), *(client(i) for i in range(clients)))
    return done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=75.0)
    parser.add_argument("--warmup", type=float, default=15.0)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--backend", default="", help="onnx or torch (default: settings).")
    parser.add_argument("--tracemalloc", action="store_true")
    args = parser.parse_args()
    import django

    django.setup()
    from django.conf import settings

    from bench.prompts import PromptPool
    from semcache import gateway
    from semcache.embedder import get_embedder
    from semcache.policy import TeamPolicy
    from semcache.services import get_engine

    settings.SEMCACHE_REDIS_URL = os.environ.get("SEMCACHE_BENCH_REDIS_URL",
                                                 "redis://127.0.0.1:6379/13")
    settings.SEMCACHE_KEY_PREFIX = f"semcache-memory-{os.getpid()}"
    if args.backend:
        settings.CACHE_EMBEDDER_BACKEND = args.backend

    async def default_policy(team_id):  # no database needed: the default team policy
        return TeamPolicy()

    gateway.team_policy = default_policy
    try:
        from semcache.decision import load_params

        load_params()
    except (FileNotFoundError, ImportError):  # decision parameters not fitted in this tree
        from semcache import services
        from semcache.decision import Verdict

        def plain_threshold(query, candidates, *, threshold, guards=True):
            best = candidates[0] if candidates else None
            if best is None or best.similarity < threshold:
                return None
            return Verdict(candidate=best, similarity=best.similarity, score=best.similarity)

        services.decide = plain_threshold
        print("decision parameters missing: plain threshold decision", flush=True)
    pool = PromptPool()
    popular, prompts = pool.take(POPULAR), pool.take(8000)
    embedder = get_embedder()
    embedder.warm_up()
    print(f"backend {embedder.backend}; RSS after load {rss_mb():.0f} MB", flush=True)
    started = time.monotonic()

    def sample(done):
        print(f"  t={time.monotonic() - started:5.0f}s requests={done:6d} "
              f"RSS={rss_mb():7.1f} MB", flush=True)

    try:
        asyncio.run(soak(seconds=args.warmup, clients=args.clients, prompts=prompts,
                         popular=popular, on_sample=sample))
        if args.tracemalloc:
            tracemalloc.start(12)
        asyncio.run(gateway.wait_for_pending_writes())
        start_rss = rss_mb()
        before = tracemalloc.take_snapshot() if args.tracemalloc else None
        done = asyncio.run(soak(seconds=args.seconds, clients=args.clients,
                                prompts=prompts[4000:] + prompts[:4000], popular=popular,
                                on_sample=sample))
        end_rss = rss_mb()
        print(f"measured: {done} requests in {args.seconds:.0f}s; RSS {start_rss:.1f} -> "
              f"{end_rss:.1f} MB ({end_rss - start_rss:+.1f} MB); index entries "
              f"{get_engine().registry.loaded()}", flush=True)
        if before is not None:
            after = tracemalloc.take_snapshot()
            traced = sum(s.size for s in after.statistics("filename"))
            print(f"Python allocations traced at end: {traced / 2**20:.1f} MB; top growth:")
            for stat in after.compare_to(before, "traceback")[:8]:
                print(f"  {stat.size_diff / 1024:+9.1f} KiB {stat.count_diff:+7d} blocks  "
                      f"{stat.traceback.format()[-1].strip()}")
    finally:
        get_engine().store.flush()


if __name__ == "__main__":
    main()
