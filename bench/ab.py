"""A/B: llmops as is vs llmops with one proposed change (settings-level), same mock, interleaved.

A variant is a set of environment overrides read by bench/ab_settings.py, e.g.
``BENCH_AB_SWAP_MIDDLEWARE=Name=dotted.path`` or ``BENCH_AB_SET='{"NAME": value}'``.
Runs A, B, A, B... and prints req/s, p50 and server CPU per request for each.

Usage: python -m bench.ab --variant KEY=VALUE [...] [--concurrency 1 16] [--rounds 2]
"""

import argparse

from bench.common import markdown_table, raise_open_files_limit, tree_cpu_seconds
from bench.loadgen import chat_body, run_wrk
from bench.prompts import PromptPool
from bench.servers import bench_run, llmops, mock_upstream, prepare_llmops


def _share(cache: dict[str, int]) -> str:
    total = sum(cache.values()) or 1
    return ", ".join(f"{k} {v * 100 / total:.0f}%" for k, v in sorted(cache.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", nargs="+", required=True, metavar="KEY=VALUE",
                        help="Environment overrides of variant B.")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--cache", action="store_true", help="Semantic cache on (missing).")
    parser.add_argument("--delay-ms", type=int, default=0, choices=(0, 100),
                        help="Upstream delay of the mock.")
    args = parser.parse_args()
    raise_open_files_limit()
    variant = dict(item.split("=", 1) for item in args.variant)
    variants = {"A (as is)": {"DJANGO_SETTINGS_MODULE": "bench.ab_settings"},
                "B (variant)": {"DJANGO_SETTINGS_MODULE": "bench.ab_settings", **variant}}
    pool = PromptPool()
    rows = []
    with bench_run(), mock_upstream() as mock:
        key = prepare_llmops(mock)
        for round_ in range(args.rounds):
            for label, env in variants.items():
                with llmops(key, semantic_cache=args.cache, workers=1, name="llmops-ab",
                            extra_env=env) as target:
                    for conns in args.concurrency:
                        model = f"bench-d{args.delay_ms}"
                        bodies = [chat_body(model, p) for p in pool.take(3000)]
                        warm = [chat_body(model, p) for p in pool.take(500)]
                        run_wrk(target.chat_url, warm, connections=conns, seconds=2,
                                auth=target.auth)
                        cpu = tree_cpu_seconds(target.pid)
                        r = run_wrk(target.chat_url, bodies, connections=conns,
                                    seconds=args.seconds, auth=target.auth, collect=True)
                        cpu = (tree_cpu_seconds(target.pid) - cpu) * 1000 / max(r.requests, 1)
                        rows.append([round_ + 1, label, conns, _share(r.cache), f"{r.rps:.1f}",
                                     f"{r.p50_ms:.2f}", f"{r.p99_ms:.2f}", r.errors,
                                     f"{cpu:.2f}"])
                        print(rows[-1], flush=True)
    print(f"B = {variant}")
    print(markdown_table(["round", "variant", "concurrency", "cache", "req/s", "p50 ms", "p99 ms",
                          "errors", "server CPU ms/req"], rows))


if __name__ == "__main__":
    main()
