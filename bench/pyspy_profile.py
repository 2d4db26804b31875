"""Profile llmops under load with py-spy: where the gateway's CPU goes, by function and by package.

Needs py-spy in bench/.cache/tools (``python3 -m venv bench/.cache/tools &&
bench/.cache/tools/bin/pip install py-spy==0.4.3``). Writes the collapsed stacks to
bench/.cache/results/ (flamegraph.pl or speedscope read them) and prints the top frames.

Usage: python -m bench.pyspy_profile [--mode off|miss|hit] [--concurrency 16] [--seconds 15]
"""

import argparse
import subprocess
import threading
from collections import Counter
from pathlib import Path

from bench.common import CACHE, RESULTS, raise_open_files_limit
from bench.loadgen import chat_body, run_wrk
from bench.prompts import PromptPool, hit_prompt
from bench.servers import bench_run, llmops, mock_upstream, prepare_llmops

PY_SPY = CACHE / "tools" / "bin" / "py-spy"
_GROUPS = ("llmops", "budgets", "routing", "semcache", "django", "rest_framework", "asgiref",
           "uvicorn", "httpx", "httpcore", "psycopg", "redis", "django_redis", "prometheus_client",
           "sentence_transformers", "torch", "json", "asyncio", "concurrent", "threading",
           "logging", "uvloop")


def _group(frame: str) -> str:
    # py-spy frames look like "function (path/to/module.py:123)".
    path = frame.rsplit("(", 1)[-1]
    for name in _GROUPS:
        if f"/{name}/" in path or path.startswith(f"{name}/"):
            return name
    return "other"


def summarize(collapsed: Path, *, top: int = 25) -> str:
    """Return the top self-time frames and the inclusive share per package."""
    own: Counter = Counter()
    inclusive: Counter = Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        count = int(count_text)
        frames = stack.split(";")
        total += count
        own[frames[-1]] += count
        for group in {_group(f) for f in frames}:
            inclusive[group] += count
    lines = [f"samples: {total}", "", "self time:"]
    lines += [f"  {c * 100 / total:5.1f}%  {f}" for f, c in own.most_common(top)]
    lines += ["", "inclusive, by package:"]
    lines += [f"  {c * 100 / total:5.1f}%  {g}" for g, c in inclusive.most_common()]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=("off", "miss", "hit"), default="off",
                        help="Semantic cache off, on and missing, on and hitting.")
    parser.add_argument("--concurrency", type=int, default=16, help="wrk connections.")
    parser.add_argument("--seconds", type=int, default=15, help="Seconds to sample.")
    parser.add_argument("--delay-ms", type=int, default=0, help="Upstream delay (0 or 100).")
    parser.add_argument("--idle", action="store_true", help="Include idle (waiting) samples.")
    parser.add_argument("--gil", action="store_true",
                        help="Only samples holding the GIL (pure Python CPU).")
    args = parser.parse_args()
    if not PY_SPY.exists():
        raise SystemExit(f"py-spy not found at {PY_SPY}; see this module's docstring")
    raise_open_files_limit()
    pool = PromptPool()
    model = f"bench-d{args.delay_ms}"
    prompts = [hit_prompt()] if args.mode == "hit" else pool.take(20000)
    bodies = [chat_body(model, p) for p in prompts]
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"profile-{args.mode}-c{args.concurrency}.txt"
    with bench_run(), mock_upstream() as mock:
        key = prepare_llmops(mock)
        with llmops(key, semantic_cache=args.mode != "off", workers=1,
                    name="llmops-profile") as target:
            run_wrk(target.chat_url, bodies[:2000], connections=args.concurrency, seconds=3,
                    auth=target.auth)
            load = threading.Thread(target=run_wrk, args=(target.chat_url, bodies),
                                    kwargs={"connections": args.concurrency,
                                            "seconds": args.seconds + 4, "auth": target.auth})
            load.start()
            argv = [str(PY_SPY), "record", "--pid", str(target.pid), "--duration",
                    str(args.seconds), "--format", "raw", "--output", str(out), "--rate", "250",
                    "--nonblocking"]
            if args.idle:
                argv.append("--idle")
            if args.gil:
                argv.append("--gil")
            subprocess.run(argv, check=True, capture_output=True)
            load.join()
    print(f"collapsed stacks: {out}")
    print(summarize(out))


if __name__ == "__main__":
    main()
