"""Overhead vs the peer: the same requests straight to the mock, through llmops and through LiteLLM.

llmops runs its full path (auth, throttle, routing, budgets on PostgreSQL, ledger, metrics) three
ways: semantic cache off, on and missing (distinct prompts), on and hitting (one prompt). Both
gateways run the same number of worker processes. Overhead = gateway p50 - direct p50.

Usage: python -m bench.overhead [--quick] [--seconds S] [--concurrency 1 16 64] [--delays 0 100]
"""

import argparse
import contextlib
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field

from bench import report
from bench.common import (
    machine_info,
    raise_open_files_limit,
    save_result,
    tree_cpu_seconds,
    wait_idle,
)
from bench.loadgen import chat_body, run_wrk
from bench.prompts import PromptPool, hit_prompt
from bench.servers import (
    LITELLM_VERSION,
    Target,
    bench_run,
    litellm,
    llmops,
    mock_upstream,
    prepare_llmops,
)

TARGETS = ("direct", "litellm", "llmops-off", "llmops-miss", "llmops-hit")
PLAIN_PROMPTS = 2000  # distinct prompts cycled by every target that has no cache


@dataclass
class OverheadConfig:
    """What to measure and for how long."""

    concurrencies: list[int] = field(default_factory=lambda: [1, 16, 64])
    delays_ms: list[int] = field(default_factory=lambda: [0, 100])
    seconds: float = 10.0
    warmup: float = 3.0
    workers: int = 1
    targets: list[str] = field(default_factory=lambda: list(TARGETS))


@contextlib.contextmanager
def _start(kind: str, mock: Target, key: str, workers: int) -> Iterator[Target]:
    if kind == "direct":
        yield mock
    elif kind == "litellm":
        with litellm(mock, workers=workers) as target:
            yield target
    else:
        with llmops(key, semantic_cache=kind != "llmops-off", workers=workers,
                    name=kind) as target:
            yield target


def _model(kind: str, delay_ms: int) -> str:
    return f"mock-d{delay_ms}" if kind == "direct" else f"bench-d{delay_ms}"


def _measure_target(kind: str, target: Target, cfg: OverheadConfig, pool: PromptPool,
                    plain: list[str]) -> list[dict]:
    rows = []
    collect = kind.startswith("llmops")
    for delay in cfg.delays_ms:
        model = _model(kind, delay)
        for connections in cfg.concurrencies:
            if kind == "llmops-hit":
                warm_bodies = bodies = [chat_body(model, hit_prompt())]
            elif kind == "llmops-miss":
                warm_bodies = [chat_body(model, p) for p in pool.take(1500)]
            else:
                warm_bodies = bodies = [chat_body(model, p) for p in plain]
            wait_idle(target.pid)
            warm = run_wrk(target.chat_url, warm_bodies, connections=connections,
                           seconds=cfg.warmup, auth=target.auth, collect=collect)
            if kind == "llmops-miss":
                # Enough distinct prompts that the measured run never repeats one.
                needed = int(max(warm.rps, 50) * cfg.seconds * 1.5) + 200
                bodies = [chat_body(model, p) for p in pool.take(needed)]
            if kind == "llmops-hit":
                time.sleep(0.5)  # let the write-behind store land before measuring hits
            wait_idle(target.pid)
            cpu_before = tree_cpu_seconds(target.pid)
            result = run_wrk(target.chat_url, bodies, connections=connections,
                             seconds=cfg.seconds, auth=target.auth, collect=collect)
            cpu = tree_cpu_seconds(target.pid) - cpu_before
            rows.append({"target": kind, "delay_ms": delay, **asdict(result),
                         "cpu_ms_per_request": cpu * 1000 / max(result.requests, 1)})
            print(f"  {kind:12} delay={delay:>3}ms c={connections:>3}: {result.rps:8.1f} rps "
                  f"p50={result.p50_ms:7.2f} ms p99={result.p99_ms:7.2f} ms "
                  f"errors={result.errors} cpu/req={rows[-1]['cpu_ms_per_request']:.2f} ms "
                  f"{result.cache or ''}", flush=True)
    return rows


def run(cfg: OverheadConfig) -> dict:
    """Run the overhead matrix; return the raw rows plus run metadata."""
    raise_open_files_limit()
    pool = PromptPool()
    plain = pool.take(PLAIN_PROMPTS)
    rows: list[dict] = []
    failed: dict[str, str] = {}
    started = machine_info()
    with bench_run(), mock_upstream() as mock:
        key = prepare_llmops(mock)
        for kind in cfg.targets:
            print(f"[overhead] {kind}", flush=True)
            try:
                with _start(kind, mock, key, cfg.workers) as target:
                    rows += _measure_target(kind, target, cfg, pool, plain)
            except (RuntimeError, TimeoutError) as exc:
                # One target failing to start (see bench/.cache/logs/) must not lose the others.
                print(f"  {kind} failed: {exc}", flush=True)
                failed[kind] = str(exc)[:300]
    return {"scenario": "overhead", "config": asdict(cfg), "started": started,
            "finished": machine_info(), "litellm_version": LITELLM_VERSION,
            "prompts_wrapped": pool.wrapped, "rows": rows, "failed": failed}


def config_from_args(argv: list[str] | None = None) -> OverheadConfig:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    return config_from(parser.parse_args(argv))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the overhead scenario's options to `parser`."""
    parser.add_argument("--quick", action="store_true", help="Short runs (smoke test).")
    parser.add_argument("--seconds", type=float, help="Measured seconds per cell (default 10).")
    parser.add_argument("--warmup", type=float, help="Warm-up seconds per cell (default 3).")
    parser.add_argument("--concurrency", type=int, nargs="+", help="Default: 1 16 64.")
    parser.add_argument("--delays", type=int, nargs="+", help="Upstream delays in ms (0 100).")
    parser.add_argument("--workers", type=int, default=1,
                        help="Worker processes of each gateway (default 1, LiteLLM's default).")
    parser.add_argument("--targets", nargs="+", choices=TARGETS, help="Subset of targets.")


def config_from(args: argparse.Namespace) -> OverheadConfig:
    """Return the OverheadConfig that parsed `args` ask for."""
    cfg = OverheadConfig(workers=args.workers)
    if args.quick:
        cfg.seconds, cfg.warmup = 3.0, 1.0
    cfg.seconds = args.seconds or cfg.seconds
    cfg.warmup = args.warmup or cfg.warmup
    cfg.concurrencies = args.concurrency or cfg.concurrencies
    cfg.delays_ms = args.delays or cfg.delays_ms
    cfg.targets = args.targets or cfg.targets
    return cfg


def main() -> None:
    result = run(config_from_args())
    save_result("overhead", result)
    print(report.overhead_tables(result))


if __name__ == "__main__":
    main()
