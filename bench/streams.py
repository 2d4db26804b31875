"""Concurrency: N (default 1,000) concurrent streamed requests whose upstream streams for 2 s.

llmops runs on the production launcher (python -m llmops.serve) with the production defaults
(semantic cache on, budgets, ledger, metrics); every request has its own prompt. Reports
completed streams, errors, time to first token (p50/p99), total time and peak server memory.

Usage: python -m bench.streams [--quick] [--streams 1000] [--workers 2]
"""

import argparse
import asyncio
import json
import re
import statistics
import time
from dataclasses import dataclass
from urllib.parse import urlparse

from bench import report
from bench.common import (
    MemorySampler,
    machine_info,
    raise_open_files_limit,
    save_result,
    tree_rss_mb,
)
from bench.loadgen import chat_body
from bench.prompts import PromptPool
from bench.servers import Target, bench_run, litellm, llmops, mock_upstream, prepare_llmops

_TOKEN = re.compile(rb'"content":"[^"]')
STREAM_MODEL = "bench-stream2s"  # mock-d0-n21-i100: 21 chunks 100 ms apart
STREAM_SECONDS = 2.0


@dataclass
class StreamOutcome:
    """One streamed request as the client saw it."""

    ok: bool
    ttft_s: float | None
    total_s: float
    error: str = ""


async def stream_once(url: str, auth: str, body: str, *,
                      timeout: float = 180.0) -> StreamOutcome:
    """POST one streamed chat request over a fresh connection and read it to the end."""
    parsed = urlparse(url)
    payload = body.encode()
    request = (f"POST {parsed.path} HTTP/1.1\r\nHost: {parsed.netloc}\r\n"
               f"Authorization: {auth}\r\nContent-Type: application/json\r\n"
               f"Accept: application/json\r\nContent-Length: {len(payload)}\r\n"
               "Connection: close\r\n\r\n").encode() + payload
    started = time.perf_counter()
    ttft = None
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(parsed.hostname, parsed.port)
            try:
                writer.write(request)
                status = await reader.readline()
                if b" 200 " not in status:
                    rest = await reader.read(2000)
                    return StreamOutcome(False, None, time.perf_counter() - started,
                                         f"{status.decode().strip()} {rest[-200:]!r}")
                tail, errored = b"", False
                while chunk := await reader.read(65536):
                    window = tail + chunk
                    if ttft is None and _TOKEN.search(window):
                        ttft = time.perf_counter() - started
                    errored = errored or b'"error":' in window
                    tail = window[-256:]
            finally:
                writer.close()
    except (TimeoutError, OSError) as exc:
        return StreamOutcome(False, ttft, time.perf_counter() - started, type(exc).__name__)
    total = time.perf_counter() - started
    if errored:
        return StreamOutcome(False, ttft, total, "in-band error event")
    if b"data: [DONE]" not in tail:
        return StreamOutcome(False, ttft, total, "stream ended before [DONE]")
    return StreamOutcome(True, ttft, total)


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=1000, method="inclusive")[int(q * 10) - 1]


async def _burst(url: str, auth: str, bodies: list[str]) -> list[StreamOutcome]:
    return await asyncio.gather(*(stream_once(url, auth, body) for body in bodies))


def _measure(target: Target, bodies: list[str], warm: list[str]) -> dict:
    asyncio.run(_burst(target.chat_url, target.auth, warm))
    time.sleep(1.0)
    idle_mb = tree_rss_mb(target.pid)
    with MemorySampler(target.pid, interval=0.1) as memory:
        began = time.perf_counter()
        outcomes = asyncio.run(_burst(target.chat_url, target.auth, bodies))
        wall = time.perf_counter() - began
    ttfts = sorted(o.ttft_s * 1000 for o in outcomes if o.ok and o.ttft_s is not None)
    totals = sorted(o.total_s for o in outcomes if o.ok)
    errors: dict[str, int] = {}
    for o in outcomes:
        if not o.ok:
            errors[o.error[:80]] = errors.get(o.error[:80], 0) + 1
    return {"target": target.name, "streams": len(bodies), "completed": len(totals),
            "errors": len(bodies) - len(totals), "error_kinds": errors, "wall_s": wall,
            "ttft_p50_ms": _pct(ttfts, 50), "ttft_p99_ms": _pct(ttfts, 99),
            "total_p50_s": _pct(totals, 50), "total_p99_s": _pct(totals, 99),
            "peak_mb": memory.peak_mb, "idle_mb": idle_mb}


def run(*, streams: int, workers: int, semantic_cache: bool = True, peer: bool = False) -> dict:
    """Run the concurrent-streams scenario (and the same against LiteLLM when `peer`)."""
    raise_open_files_limit()
    pool = PromptPool()
    started = machine_info()
    rows = []
    with bench_run(), mock_upstream() as mock:
        key = prepare_llmops(mock)
        with llmops(key, semantic_cache=semantic_cache, workers=workers,
                    name="llmops-streams") as target:
            warm = [chat_body(STREAM_MODEL, p, stream=True) for p in pool.take(2 * workers + 8)]
            bodies = [chat_body(STREAM_MODEL, p, stream=True) for p in pool.take(streams)]
            rows.append(_measure(target, bodies, warm))
        if peer:
            with litellm(mock, workers=workers) as target:
                rows.append(_measure(target, bodies, warm))
    return {"scenario": "streams", "started": started, "finished": machine_info(),
            "stream_seconds": STREAM_SECONDS, "workers": workers,
            "semantic_cache": semantic_cache, "rows": rows}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the streams scenario's options to `parser`."""
    parser.add_argument("--streams", type=int, default=1000, help="Concurrent streams.")
    parser.add_argument("--stream-workers", type=int, default=2,
                        help="llmops worker processes (default 2: one per core).")
    parser.add_argument("--stream-no-cache", action="store_true",
                        help="Turn the semantic cache off (default: on, as in production).")
    parser.add_argument("--stream-peer", action="store_true",
                        help="Also run the same streams through LiteLLM (same workers).")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    parser.add_argument("--quick", action="store_true", help="200 streams instead of 1,000.")
    args = parser.parse_args()
    result = run(streams=200 if args.quick else args.streams, workers=args.stream_workers,
                 semantic_cache=not args.stream_no_cache, peer=args.stream_peer)
    save_result("streams", result)
    print(report.streams_table(result))
    for row in result["rows"]:
        if row["error_kinds"]:
            print(row["target"], json.dumps(row["error_kinds"], indent=2))


if __name__ == "__main__":
    main()
