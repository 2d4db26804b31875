"""Benchmark: the CPU of each step of a cache miss, one request at a time, on real Redis.

A miss does what a cache-off request does plus: build the scope, look up the exact key, embed
the prompt (with the intermediate layers routing reads), search the namespace and decide, and
store the answer. This runs those steps through the gateway's own code (`CacheEngine` over a
`RedisStore`, the process embedder) for distinct QQP questions against a namespace that grows
as it goes, and prints the thread-CPU milliseconds per miss of each step, so the difference
between the bench's cache-off and cache-missing rows has an address.

  python bench/semcache_miss_cpu.py [--misses 1600] [--batch 8] [--warm 800]
Needs Redis (SEMCACHE_BENCH_REDIS_URL, default db 3); its keys are deleted at the end.
"""

import argparse
import json
import os
import sys
import time
import uuid
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[0] = str(ROOT)  # not bench/: its modules would shadow the stdlib
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "llmops.settings.base")
os.environ.setdefault("DEBUG", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

STEPS = ("scope", "exact lookup", "embedding", "semantic lookup", "store")
ANSWER = {"role": "assistant", "content": "A stand-in answer of about twenty tokens. " * 2}


def questions(path: Path, count: int) -> list[str]:
    """Return `count` distinct questions (`text_a`) of a QQP-shaped file, in file order."""
    seen: dict[str, None] = {}
    with open(path) as handle:
        for line in handle:
            seen.setdefault(json.loads(line)["text_a"], None)
            if len(seen) >= count:
                break
    return list(seen)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", default=str(ROOT.parent / "shared/data/qqp_pairs_dev.jsonl"))
    parser.add_argument("--misses", type=int, default=1600, help="Measured misses.")
    parser.add_argument("--warm", type=int, default=800,
                        help="Misses stored first, unmeasured (the namespace's starting size).")
    parser.add_argument("--batch", type=int, default=8,
                        help="Texts per embedding call (the micro-batch under load).")
    args = parser.parse_args()

    import django

    django.setup()
    from django.conf import settings

    from semcache.embedder import get_embedder
    from semcache.namespaces import build_scope
    from semcache.services import CacheEngine
    from semcache.store import RedisStore

    url = os.environ.get("SEMCACHE_BENCH_REDIS_URL", "redis://127.0.0.1:6379/3")
    prefix = f"bench-miss-{uuid.uuid4().hex[:8]}"
    store = RedisStore(url=url, prefix=prefix)
    engine = CacheEngine(store, min_sync_interval=settings.SEMCACHE_SYNC_INTERVAL_MS / 1000)
    embedder = get_embedder()
    embedder.warm_up()
    texts = questions(Path(args.pairs), args.warm + args.misses)
    cpu = dict.fromkeys(STEPS, 0.0)

    def timed(step: str, fn, *fn_args, **fn_kwargs):
        started = time.thread_time()
        result = fn(*fn_args, **fn_kwargs)
        cpu[step] += time.thread_time() - started
        return result

    try:
        measured = 0
        for start in range(0, len(texts), args.batch):
            if start == args.warm:
                cpu = dict.fromkeys(STEPS, 0.0)
                measured = 0
            batch = texts[start:start + args.batch]
            scopes = [timed("scope", build_scope, team_id=1, requested_model="bench",
                            messages=[{"role": "user", "content": text}], answer_params={})
                      for text in batch]
            for scope in scopes:
                timed("exact lookup", engine.find_exact, scope)
            vectors, _ = timed("embedding", embedder.embed_layers_sync, batch)
            for scope, vector in zip(scopes, vectors, strict=True):
                found = timed("semantic lookup", engine.find_semantic, scope, vector,
                              threshold=settings.CACHE_SIMILARITY_THRESHOLD)
                timed("semantic lookup", engine.record, found, scope.namespace)
                timed("store", engine.put, scope, vector=vector, message=ANSWER,
                      finish_reason="stop", model="bench", usage={"prompt_tokens": 12,
                                                                  "completion_tokens": 20},
                      cost=Decimal("0.0001"), ttl_seconds=3600, request_id=uuid.uuid4().hex)
            measured += len(batch)
    finally:
        keys = list(store.r.scan_iter(f"{prefix}:*", count=1000))
        for chunk in range(0, len(keys), 1000):
            store.r.delete(*keys[chunk:chunk + 1000])

    print(f"{measured} misses after {args.warm} stored, embedding batches of {args.batch}, "
          f"{embedder.backend} {embedder.precision}, namespace ends at "
          f"{args.warm + measured} entries; thread CPU ms per miss:")
    for step in STEPS:
        print(f"  {step:<16} {cpu[step] * 1000 / measured:6.3f}")
    print(f"  {'total':<16} {sum(cpu.values()) * 1000 / measured:6.3f}")


if __name__ == "__main__":
    main()
