"""The invoice reconciliation's workload: seeded traffic, realistic and hostile, sent at two
gateway processes while one of them is SIGKILLed.

Each request's profile is `<model>-<kind>`: a model of MODELS and a kind of BEHAVIOURS, whose
fake-provider rules decide how the upstream answers (plainly, with a tool call, after 1.5 s,
paced, or lying about its usage). The client then completes the request or leaves: before
admission completes, while waiting for the answer, or in the middle of a stream.
"""

import asyncio
import base64
import json
import random
import re
import struct
import time
import zlib
from dataclasses import dataclass
from decimal import Decimal

import httpx

from tests.toolkit.fakeprovider import LIES, FakeProvider
from tests.toolkit.gateway_process import GatewayProcess

# An answer is paced at PACE_MS per one-word chunk where it is streamed for clients to leave.
PACE_MS = 25

MODELS = {  # upstream model: (short name, provider, input and output USD per token)
    "gpt-4o": ("gpt", "openai", Decimal("0.0000025"), Decimal("0.00001")),
    "claude-sonnet-4-5": ("claude", "anthropic", Decimal("0.000003"), Decimal("0.000015")),
}
BEHAVIOURS = {  # profile kind: the fake provider's rules for it (sent as X-Fake-Behavior)
    "plain": "words-24",
    "tool": "tool-words-6",
    # the first byte after 1.5 s: clients leave before it
    "wait": f"slow-1500-pace-{PACE_MS}-words-24",
    "paced": f"pace-{PACE_MS}-words-60",  # a 1.5 s stream: clients leave in the middle
    **{f"lie-{lie}": f"lie-{lie}-words-24" for lie in LIES},
}

_WORDS = """account action answer april balance batch bill budget cache change charge check
client cloud code column cost count credit data date debit delta design detail device draft
entry error event field figure file filter flow format garden graph group guide harbor header
image index input item journal kernel label ledger limit line list market matrix memory method
metric model month network night number object office order output owner packet page panel
period pixel plan policy price process profile query queue record region report request result
river route sample schema screen season server signal source spend stream summary system table
target team tenant ticket token total trace travel update usage value vector version window
winter worker year""".split()


@dataclass
class Plan:
    """One request as the client will send it, and what the client will do."""

    index: int
    key: int  # index into the issued keys
    model: str  # profile name
    kind: str  # profile kind (BEHAVIOURS)
    body: dict
    action: str  # complete | abort_early | abort_waiting | abort_mid_stream
    abort_after: float = 0.0  # seconds (abort_early, abort_waiting) or content chunks
    content: str = "plain"  # plain | tools | images | tools+images


@dataclass
class Sent:
    """What the client saw of one request."""

    plan: Plan
    gateway: int = -1
    status: int | None = None
    request_id: str = ""
    refusal: str = ""  # an error answer's code and message
    aborted: bool = False  # the client left on purpose
    killed: str = ""  # the transport error the client saw when its gateway process died
    broken: str = ""  # a transport error from a gateway that was alive (the answer broke off)


def png_image(width: int, height: int, rng: random.Random) -> bytes:
    """Return a striped RGB PNG of the given size (small on the wire, any dimensions)."""

    def chunk(tag: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + tag + data
                + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF))

    rows = [b"\x00" + bytes(rng.randrange(256) for _ in range(3)) * width for _ in range(2)]
    stripe = rng.randint(1, 64)
    raw = b"".join(rows[(y // stripe) % 2] for y in range(height))
    return (b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))


def tool_definitions(rng: random.Random) -> list[dict]:
    """Return large function definitions, as agents send them (long descriptions, enums)."""
    tools = []
    for number in range(10):
        properties = {}
        for _ in range(rng.randint(6, 14)):
            name = "_".join(rng.sample(_WORDS, 2))
            spec: dict = {"type": rng.choice(["string", "integer", "number", "boolean"]),
                          "description": " ".join(rng.choices(_WORDS, k=rng.randint(8, 30)))}
            if spec["type"] == "string" and rng.random() < 0.4:
                spec["enum"] = rng.sample(_WORDS, rng.randint(3, 9))
            properties[name] = spec
        tools.append({"type": "function", "function": {
            "name": f"{rng.choice(_WORDS)}_{rng.choice(_WORDS)}_{number}",
            "description": " ".join(rng.choices(_WORDS, k=rng.randint(40, 160))),
            "parameters": {"type": "object", "properties": properties,
                           "required": sorted(properties)[:2]}}})
    return tools


def seeded_plans(rng: random.Random, keys: int, *, requests: int) -> list[Plan]:
    """Return the seeded traffic."""
    tools = tool_definitions(rng)
    images = []
    for _ in range(12):
        png = png_image(rng.randint(32, 2000), rng.randint(32, 2000), rng)
        images.append("data:image/png;base64," + base64.b64encode(png).decode())
    lies = [f"lie-{lie}" for lie in LIES]
    plans = []
    for index in range(requests):
        roll = rng.random()
        stream = rng.random() < 0.4
        abort_after = 0.0
        if roll < 0.70:
            action = "complete"
            kind = rng.choices(["plain", "tool", rng.choice(lies)], weights=[62, 16, 22])[0]
        elif roll < 0.78:
            action, kind = "abort_early", "plain"
            abort_after = rng.uniform(0, 0.03)
        elif roll < 0.88:
            action, kind = "abort_waiting", "wait"
            abort_after = rng.uniform(0.05, 1.2)  # the provider's first byte comes at 1.5 s
        else:
            action, kind, stream = "abort_mid_stream", "paced", True
            abort_after = rng.randint(1, 40)
        short = MODELS[rng.choice(list(MODELS))][0]
        content = rng.choices(["plain", "tools", "images", "tools+images"],
                              weights=[50, 25, 20, 5])[0]
        text = f"[req {index}] " + " ".join(rng.choices(_WORDS, k=rng.randint(10, 300)))
        parts: str | list[dict] = text
        if "images" in content:
            parts = [{"type": "text", "text": text}] + [
                {"type": "image_url", "image_url": {"url": url}}
                for url in rng.sample(images, rng.randint(1, 2))]
        messages = [{"role": "user", "content": parts}]
        if rng.random() < 0.5:
            messages.insert(0, {"role": "system",
                                "content": " ".join(rng.choices(_WORDS, k=rng.randint(5, 60)))})
        body: dict = {"model": f"{short}-{kind}", "messages": messages}
        if "tools" in content:
            body["tools"] = rng.sample(tools, rng.randint(2, 5))
        if rng.random() < 0.7:
            body["max_tokens"] = rng.randint(16, 200)
        if stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        plans.append(Plan(index=index, key=rng.randrange(keys), model=body["model"], kind=kind,
                          body=body, action=action, abort_after=abort_after, content=content))
    return plans


async def send_planned(client: httpx.AsyncClient, sent: Sent, url: str, key: str) -> None:
    """Send one request and act as its plan says; record what the client saw in `sent`."""
    plan = sent.plan
    request = {"method": "POST", "url": f"{url}/v1/chat/completions", "json": plan.body,
               "headers": {"Authorization": f"Bearer {key}"}}
    if plan.action == "abort_mid_stream":
        async with client.stream(**request) as response:
            sent.status, sent.request_id = response.status_code, response.headers.get(
                "x-request-id", "")
            received = 0
            async for line in response.aiter_lines():
                received += '"content":' in line and '"content":""' not in line
                if received >= plan.abort_after:
                    sent.aborted = True
                    return  # leaving the block closes the connection mid-body
        return

    async def call() -> None:
        async with client.stream(**request) as response:
            sent.status, sent.request_id = response.status_code, response.headers.get(
                "x-request-id", "")
            await response.aread()
            if response.status_code != 200:
                error = response.json().get("error") or {}
                sent.refusal = f"{error.get('code')}: {str(error.get('message'))[:120]}"

    if plan.action == "complete":
        await call()
        return
    try:
        await asyncio.wait_for(call(), timeout=plan.abort_after)
    except TimeoutError:
        sent.aborted = True


def plan_index(body: dict | None) -> int | None:
    """Return the plan a request the provider received belongs to (its `[req N]` tag)."""
    found = re.search(r"\[req (\d+)\]", json.dumps((body or {}).get("messages")))
    return int(found.group(1)) if found else None


@dataclass
class Run:
    """The traffic's outcome on the client side."""

    sent: list[Sent]
    killed_at: float = 0.0
    upstream_at_kill: int = 0  # requests of the killed process the provider was answering
    unreached: int = 0  # sent to the killed process after it died: never arrived anywhere
    seconds: float = 0.0


async def storm(plans: list[Plan], keys: list[str], gateways: list[GatewayProcess],
                provider: FakeProvider, *, concurrency: int, kill_at: float,
                kill_min_upstream: int) -> Run:
    run = Run(sent=[Sent(plan=plan) for plan in plans])
    doomed = 1
    in_flight: list[set[int]] = [set(), set()]  # plan indexes, per gateway
    reached: set[int] = set()  # plan indexes the provider received
    started = 0
    killed = asyncio.Event()
    queue: asyncio.Queue[Sent] = asyncio.Queue()
    for sent in run.sent:
        queue.put_nowait(sent)
    began = time.monotonic()
    # No keep-alive: every request has its own connection, so a client that leaves closes it.
    limits = httpx.Limits(max_connections=2 * concurrency, max_keepalive_connections=0)

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal started
        while not queue.empty():
            sent = queue.get_nowait()
            started += 1
            sent.gateway = target = 0 if killed.is_set() or sent.plan.index % 2 == 0 else doomed
            in_flight[target].add(sent.plan.index)
            key = keys[sent.plan.key]
            try:
                await send_planned(client, sent, gateways[target].url, key)
            except httpx.ConnectError:
                if not killed.is_set():
                    raise
                run.unreached += 1  # raced the kill: send it again to the survivor
                sent.gateway, sent.status, sent.request_id = 0, None, ""
                await send_planned(client, sent, gateways[0].url, key)
            except httpx.TransportError as exc:
                if target == doomed and killed.is_set():
                    sent.killed = type(exc).__name__
                else:
                    sent.broken = f"{type(exc).__name__}: {exc}"
            finally:
                in_flight[target].discard(sent.plan.index)

    async def killer() -> None:
        # Kill when the doomed process has calls out at the provider: they must be billed,
        # and their reservations are left for the survivor's sweep.
        seen = 0
        while True:
            await asyncio.sleep(0.01)
            received = provider.requests[seen:]
            seen += len(received)
            reached.update(plan_index(request.body) for request in received)
            upstream = in_flight[doomed] & reached
            if started >= kill_at * len(plans) and len(upstream) >= kill_min_upstream:
                break
        run.upstream_at_kill = len(upstream)
        killed.set()
        gateways[doomed].kill()
        run.killed_at = time.monotonic() - began

    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        kill_task = asyncio.create_task(killer())
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        assert kill_task.done(), "the traffic ended before a gateway process could be killed"
        await kill_task
    run.seconds = time.monotonic() - began
    return run
