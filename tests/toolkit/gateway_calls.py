"""Calling the live gateway: a fresh question, the caller's headers, a stream left part-way, and
waiting for the request's ledger row."""

import time
import uuid

import httpx


def chat_body(model: str, **extra) -> dict:
    """Return a short chat request for `model` with a question no earlier test asked."""
    return {"model": model, "max_tokens": 64,
            "messages": [{"role": "user", "content": f"question {uuid.uuid4().hex}"}], **extra}


def caller_headers(api_key, request_id: str) -> dict:
    """Return the headers of a call by `api_key` (an IssuedKey) under `request_id`."""
    return {"Authorization": f"Bearer {api_key.key}", "X-Request-ID": request_id}


def read_content_chunks(response: httpx.Response, count: int) -> int:
    """Read a streamed answer until `count` chunks with content arrived; return how many did.

    The caller then leaves the stream as a client that gives up would."""
    received = 0
    for line in response.iter_lines():
        if line.startswith("data: ") and '"content"' in line:
            received += 1
        if received >= count:
            break
    return received


def wait_for_record(request_id: str | None = None, timeout: float = 10.0):
    """Return the ledger row of `request_id` (else the first one) once it is written."""
    from budgets.models import UsageRecord

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = UsageRecord.objects.all()
        if request_id:
            rows = rows.filter(request_id=request_id)
        record = rows.first()
        if record is not None:
            return record
        time.sleep(0.05)
    raise AssertionError(f"no ledger row for {request_id or 'any request'} after {timeout}s")
