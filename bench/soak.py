"""Soak: 50 concurrent clients for 5 minutes against llmops; RPS, errors, memory start vs end.

The production defaults (semantic cache on, budgets, ledger, metrics) with a steady mix: every
other request repeats one of a few hundred popular prompts (cache hits after warm-up), the rest
are distinct prompts sent with `Cache-Control: no-store` (an embedding, a miss, the upstream, a
budget reservation and a ledger row, but no new cache entry), so the cache does not grow by
design and any memory growth after warm-up is a leak.

Usage: python -m bench.soak [--quick] [--seconds 300] [--clients 50]
"""

import argparse
import time

from bench import report
from bench.common import (
    MemorySampler,
    machine_info,
    raise_open_files_limit,
    save_result,
    tree_rss_mb,
)
from bench.loadgen import Body, chat_body, run_wrk
from bench.prompts import PromptPool
from bench.servers import bench_run, llmops, mock_upstream, prepare_llmops

POPULAR = 200


def bodies(pool: PromptPool, *, distinct: int, model: str) -> list[Body]:
    """Return popular and distinct-no-store request bodies, half each.

    In blocks of four (popular, popular, fresh, fresh): wrk's two threads take every other
    body, so each thread gets the same half-and-half mix.
    """
    popular = pool.take(POPULAR)
    fresh = pool.take(distinct)
    out: list[Body] = []
    for i in range(0, len(fresh) - 1, 2):
        out += [chat_body(model, popular[i % POPULAR]),
                chat_body(model, popular[(i + 1) % POPULAR]),
                (chat_body(model, fresh[i]), {"Cache-Control": "no-store"}),
                (chat_body(model, fresh[i + 1]), {"Cache-Control": "no-store"})]
    return out


def run(*, seconds: float, warmup: float, clients: int, workers: int, delay_ms: int = 0,
        extra_env: dict[str, str] | None = None) -> dict:
    """Run the soak; return its numbers (`extra_env`: server environment overrides)."""
    raise_open_files_limit()
    pool = PromptPool()
    started = machine_info()
    model = f"bench-d{delay_ms}"
    with bench_run(), mock_upstream() as mock:
        key = prepare_llmops(mock)
        with llmops(key, semantic_cache=True, workers=workers, name="llmops-soak",
                    extra_env=extra_env) as target:
            load = bodies(pool, distinct=8000, model=model)
            warm = run_wrk(target.chat_url, load, connections=clients, seconds=warmup,
                           auth=target.auth)
            time.sleep(1.0)
            mem_start = tree_rss_mb(target.pid)
            with MemorySampler(target.pid, interval=5.0) as memory:
                result = run_wrk(target.chat_url, load, connections=clients, seconds=seconds,
                                 auth=target.auth, collect=True)
            time.sleep(1.0)
            mem_end = tree_rss_mb(target.pid)
    return {
        "scenario": "soak", "started": started, "finished": machine_info(),
        "connections": clients, "seconds": result.seconds, "warmup_s": warmup,
        "warmup_requests": warm.requests, "workers": workers, "delay_ms": delay_ms,
        "requests": result.requests, "rps": result.rps, "errors": result.errors,
        "error_detail": result.error_detail, "statuses": result.statuses, "cache": result.cache,
        "p50_ms": result.p50_ms, "p99_ms": result.p99_ms, "mem_start_mb": mem_start,
        "mem_end_mb": mem_end, "mem_peak_mb": max(memory.peak_mb, mem_end),
        "memory_series": memory.samples, "prompts_wrapped": pool.wrapped,
        "extra_env": extra_env or {},
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the soak scenario's options to `parser`."""
    parser.add_argument("--soak-seconds", type=float, default=300.0,
                        help="Measured soak duration (default 300; --quick: 60).")
    parser.add_argument("--soak-warmup", type=float, default=30.0,
                        help="Warm-up before the start memory is taken (default 30; --quick 10).")
    parser.add_argument("--clients", type=int, default=50, help="Concurrent clients (50).")
    parser.add_argument("--soak-workers", type=int, default=2,
                        help="llmops worker processes (default 2: one per core).")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    parser.add_argument("--quick", action="store_true", help="A 1-minute soak.")
    parser.add_argument("--env", nargs="+", default=[], metavar="KEY=VALUE",
                        help="Server environment overrides (e.g. MALLOC_ARENA_MAX=2).")
    args = parser.parse_args()
    result = run(seconds=60.0 if args.quick else args.soak_seconds,
                 warmup=10.0 if args.quick else args.soak_warmup, clients=args.clients,
                 workers=args.soak_workers,
                 extra_env=dict(item.split("=", 1) for item in args.env))
    save_result("soak-experiment" if args.env else "soak", result)
    print(report.soak_table(result))


if __name__ == "__main__":
    main()
