"""Send a request log through a gateway with a real key (`manage.py replay LOG` without
`--estimate`): concurrency, a rate limit, the bill against the bill as sent, Batch output lines.

Each Batch input line (`{"custom_id", "method", "url", "body"}`) is POSTed to the gateway at
`url` + the line's url, as the key's client would send it. Batch lines are answered whole, so a
line's `stream` is dropped. The bill is the sum of the answers' `usage.cost`; the bill as sent adds
back what llmops saved on each (`usage.llmops.cost_saved`): what the same requests would have
cost without llmops (docs/savings.md). Each line's result is kept in the Batch output format.
"""

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal

import httpx

DEFAULT_URL = "http://127.0.0.1:8000"
# Time for one answer; a line that takes longer is recorded as an error, the replay goes on.
REQUEST_TIMEOUT_SECONDS = 300.0


@dataclass
class ReplayBill:
    """What sending a log cost (USD), against the bill as sent, and how each line ended."""

    sent: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    statuses: dict[str, int] = field(default_factory=dict)   # HTTP status (or "error") → count
    cache: dict[str, int] = field(default_factory=dict)      # X-LLMOps-Cache → count
    bill: Decimal = Decimal(0)
    bill_as_sent: Decimal = Decimal(0)
    results: list[dict] = field(default_factory=list)        # Batch output lines, in log order

    def count(self, tally: dict[str, int], key: str) -> None:
        tally[key] = tally.get(key, 0) + 1

    def as_dict(self) -> dict:
        """Return the figures (amounts as exact decimal strings) without the per-line results."""
        cut = (1 - self.bill / self.bill_as_sent) if self.bill_as_sent else None
        return {"sent": self.sent, "skipped": self.skipped, "statuses": self.statuses,
                "cache": self.cache, "bill": str(self.bill),
                "bill_as_sent": str(self.bill_as_sent),
                "saved": str(self.bill_as_sent - self.bill),
                "bill_cut": None if cut is None else float(cut)}


class RateLimit:
    """Start at most `rate` requests per second (evenly spaced); no limit when rate is None."""

    def __init__(self, rate: float | None) -> None:
        self.interval = 1.0 / rate if rate else 0.0
        self._next = time.monotonic()
        self._lock = asyncio.Lock()

    async def wait(self) -> None:
        if not self.interval:
            return
        async with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + self.interval
        await asyncio.sleep(start - now)


def _sendable(row: dict) -> str | None:
    """Return why a Batch line cannot be sent, or None."""
    if str(row.get("method", "POST")).upper() != "POST":
        return "not POST"
    if not str(row.get("url", "")).startswith("/v1/"):
        return "not a /v1/ url"
    return None


def _amounts(body) -> tuple[Decimal, Decimal]:
    """Return (cost, cost_saved) from an answer's usage (0 where absent)."""
    usage = body.get("usage") if isinstance(body, dict) else None
    if not isinstance(usage, dict):
        return Decimal(0), Decimal(0)
    llmops = usage.get("llmops") if isinstance(usage.get("llmops"), dict) else {}
    return (Decimal(str(usage.get("cost") or 0)),
            Decimal(str(llmops.get("cost_saved") or 0)))


async def _send_one(client: httpx.AsyncClient, number: int, row: dict) -> tuple[dict, str]:
    """Return the line's Batch output object and its cache status ("" if none)."""
    body = {k: v for k, v in row["body"].items() if k not in ("stream", "stream_options")}
    out = {"id": f"batch_req_{number}", "custom_id": row.get("custom_id"), "response": None,
           "error": None}
    try:
        reply = await client.post(row["url"], json=body)
    except httpx.HTTPError as exc:
        out["error"] = {"code": type(exc).__name__, "message": str(exc) or type(exc).__name__}
        return out, ""
    try:
        answer = reply.json()
    except ValueError:
        answer = reply.text
    out["response"] = {"status_code": reply.status_code,
                       "request_id": reply.headers.get("x-request-id", ""), "body": answer}
    return out, reply.headers.get("x-llmops-cache", "")


async def replay_send(lines: list[tuple[int, dict]], *, url: str, key: str, concurrency: int = 4,
                      rate: float | None = None,
                      progress: Callable[[int], object] | None = None) -> ReplayBill:
    """Send `lines` (read_batch's) to the gateway at `url` with `key`, at most `concurrency` at
    once and `rate` started per second; return the bill, results in log order."""
    result = ReplayBill()
    slots, limit = asyncio.Semaphore(max(1, concurrency)), RateLimit(rate)
    outputs: list[dict | None] = [None] * len(lines)

    async def run(i: int, number: int, row: dict, client: httpx.AsyncClient) -> None:
        async with slots:
            await limit.wait()
            outputs[i], cache_status = await _send_one(client, number, row)
        response = outputs[i]["response"]
        result.count(result.statuses, "error" if response is None
                     else str(response["status_code"]))
        if cache_status:
            result.count(result.cache, cache_status)
        if response is not None and response["status_code"] < 400:
            cost, saved = _amounts(response["body"])
            result.bill += cost
            result.bill_as_sent += cost + saved
        if progress is not None:
            progress(1)

    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=url.rstrip("/"), headers=headers,
                                 timeout=REQUEST_TIMEOUT_SECONDS) as client:
        tasks = []
        for i, (number, row) in enumerate(lines):
            reason = _sendable(row)
            if reason is not None:
                result.count(result.skipped, reason)
                if progress is not None:
                    progress(1)
                continue
            result.sent += 1
            tasks.append(run(i, number, row, client))
        await asyncio.gather(*tasks)
    result.results = [out for out in outputs if out is not None]
    return result
