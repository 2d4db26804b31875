"""The ledger is the invoice: the gateway's ledger reconciled with a provider's bill, request by
request, after a seeded storm of realistic and hostile traffic.

Two gateway processes share the PostgreSQL database and call the billing fake provider
(`run_fake_provider(billing=True)`), which bills every call the way a real provider does: the
honest prompt (tool definitions and images included) and the answer tokens it actually sent,
also to a client that left. Several teams and keys have small daily limits, so admission refuses
part of the traffic. The requests mix plain chat, large tool definitions, PNG images, streams,
client aborts (before admission completes, while waiting for the answer, mid-stream), providers
that lie about usage, and one gateway process SIGKILLed mid-run, whose in-flight requests are
left to the survivor's stale-reservation sweep. Then:

(a) every budget counter's spend is within its limit and equals the ledger's sum for it;
(b) no reservation is left once the sweep ran;
(c) every request id on the invoice has exactly one ledger row, charged the invoice's tokens at
    the profile's prices, except: a lying upstream's request is charged no less than the
    invoice; a request whose client left is charged no less than the invoice minus the answer
    tokens in flight (IN_FLIGHT_TOKENS); a request of the killed process is charged no less
    than the invoice (the sweep charges its reservation);
(d) every 200 a client received has its ledger row;
(e) the reservation bounds what the provider billed (the invariant that makes (a) possible).

Every violation is collected, the summary table printed, and the test fails listing them all.
"""

import asyncio
import base64
import json
import random
import re
import struct
import time
import zlib
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from decimal import Decimal

import httpx
import pytest

from budgets.models import BudgetCounter, BudgetReservation, UsageRecord
from budgets.selectors import ledger_spent
from budgets.services import budget_set
from routing.models import ModelProfile
from routing.pricing import USD
from routing.selectors import invalidate_snapshot
from tests.toolkit.fakeprovider import LIES, FakeProvider, InvoiceLine, run_fake_provider
from tests.toolkit.gateway_process import GatewayProcess, gateway_database_url, is_postgres

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

SEED = 7_2024
REQUESTS = 520
CONCURRENCY = 24  # two gateways, the provider and the clients share two cores
KILL_AT = 0.45  # share of the requests started when one gateway process is SIGKILLed
KILL_MIN_UPSTREAM = 4  # ... and at least this many of its requests are out at the provider
# Each gateway process heartbeats and sweeps every HEARTBEAT_SECONDS; the reservations of a
# process silent for HOLDER_TIMEOUT_SECONDS are released and charged by a survivor.
HEARTBEAT_SECONDS = 1
HOLDER_TIMEOUT_SECONDS = 5  # a loaded process must not look dead: 5 missed beats
# A client that leaves mid-answer leaves tokens in flight: sent by the provider (and billed)
# but not yet read by the gateway when it stops reading. Answers here are paced at PACE_MS per
# one-word chunk and the provider stops at its next chunk once the gateway closes the upstream
# connection, so what is in flight is what the gateway had not parsed when the client's
# disconnect reached it, plus at most one chunk: 16 tokens is ~8 chunks, 200 ms of a gateway
# event loop stalled by a loaded machine.
PACE_MS = 25
IN_FLIGHT_TOKENS = 16
PROVIDER_KEY_ENV = "RECONCILE_PROVIDER_KEY"

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
TEAMS = {  # team: (daily limit of the team, daily limit of its first key; the second has none)
    "recon-a": (Decimal("0.12"), Decimal("0.05")),
    "recon-b": (Decimal("0.20"), Decimal("0.08")),
    "recon-c": (Decimal("0.30"), Decimal("0.12")),
    "recon-d": (Decimal("0.50"), Decimal("0.20")),
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


# --- The traffic ----------------------------------------------------------------------------
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


def _png(width: int, height: int, rng: random.Random) -> bytes:
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


def _tools(rng: random.Random) -> list[dict]:
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


def _plans(rng: random.Random, keys: int) -> list[Plan]:
    """Return the seeded traffic."""
    tools = _tools(rng)
    images = []
    for _ in range(12):
        png = _png(rng.randint(32, 2000), rng.randint(32, 2000), rng)
        images.append("data:image/png;base64," + base64.b64encode(png).decode())
    lies = [f"lie-{lie}" for lie in LIES]
    plans = []
    for index in range(REQUESTS):
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


async def _send(client: httpx.AsyncClient, sent: Sent, url: str, key: str) -> None:
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


def _plan_index(body: dict | None) -> int | None:
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


async def _storm(plans: list[Plan], keys: list[str], gateways: list[GatewayProcess],
                 provider: FakeProvider) -> Run:
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
    limits = httpx.Limits(max_connections=2 * CONCURRENCY, max_keepalive_connections=0)

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal started
        while not queue.empty():
            sent = queue.get_nowait()
            started += 1
            sent.gateway = target = 0 if killed.is_set() or sent.plan.index % 2 == 0 else doomed
            in_flight[target].add(sent.plan.index)
            key = keys[sent.plan.key]
            try:
                await _send(client, sent, gateways[target].url, key)
            except httpx.ConnectError:
                if not killed.is_set():
                    raise
                run.unreached += 1  # raced the kill: send it again to the survivor
                sent.gateway, sent.status, sent.request_id = 0, None, ""
                await _send(client, sent, gateways[0].url, key)
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
            reached.update(_plan_index(request.body) for request in received)
            upstream = in_flight[doomed] & reached
            if started >= KILL_AT * len(plans) and len(upstream) >= KILL_MIN_UPSTREAM:
                break
        run.upstream_at_kill = len(upstream)
        killed.set()
        gateways[doomed].kill()
        run.killed_at = time.monotonic() - began

    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        kill_task = asyncio.create_task(killer())
        await asyncio.gather(*(worker(client) for _ in range(CONCURRENCY)))
        assert kill_task.done(), "the traffic ended before a gateway process could be killed"
        await kill_task
    run.seconds = time.monotonic() - began
    return run


# --- The books ------------------------------------------------------------------------------
def _invoice_cost(line: InvoiceLine) -> Decimal:
    _, _, input_price, output_price = MODELS[line.model]
    return Decimal(line.prompt_tokens * input_price
                   + line.completion_tokens * output_price).quantize(USD)


def _plan_of_request_ids(provider: FakeProvider) -> dict[str, int]:
    """Return {gateway request id: plan index} from what the provider received."""
    return {request.headers["x-request-id"]: _plan_index(request.body)
            for request in provider.requests if request.headers.get("x-request-id")}


@dataclass
class Category:
    """One row of the summary: requests on the invoice of one kind, and how the ledger did."""

    requests: int = 0
    invoice: Decimal = Decimal(0)
    ledger: Decimal = Decimal(0)
    violations: int = 0
    worst: Decimal = Decimal(0)  # the largest shortfall (negative) or excess beyond the rule

    def add(self, invoice: Decimal, ledger: Decimal, miss: Decimal) -> None:
        self.requests += 1
        self.invoice += invoice
        self.ledger += ledger
        if miss:
            self.violations += 1
            self.worst = miss if abs(miss) > abs(self.worst) else self.worst


@dataclass
class Books:
    """What the reconciliation found."""

    categories: dict[str, Category] = field(
        default_factory=lambda: {name: Category() for name in
                                 ("honest", "lied", "client left", "killed")})
    problems: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    # per check: how many problems each model profile had (where the problem is a request's)
    problem_models: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    reservation_over: Category = field(default_factory=Category)
    # (answer tokens billed but not charged, the request) of requests whose client left
    in_flight: list[tuple[int, str]] = field(default_factory=list)
    ledger_only_kinds: Counter = field(default_factory=Counter)  # status/error kind: rows
    charged_unbilled: list[str] = field(default_factory=list)  # charged, never billed
    ledger_only: Category = field(default_factory=Category)

    def problem(self, check: str, detail: str, *, model: str = "") -> None:
        self.problems[check].append(detail)
        if model:
            self.problem_models[check][model] += 1


def _reconcile(provider: FakeProvider, run: Run) -> Books:
    books = Books()
    invoice = provider.invoice
    owners = _plan_of_request_ids(provider)
    sent_by_index = {sent.plan.index: sent for sent in run.sent}
    records: dict[str, list[UsageRecord]] = defaultdict(list)
    for record in UsageRecord.objects.all():
        records[record.request_id].append(record)

    # (c) and (e): request by request.
    for request_id, line in invoice.items():
        sent = sent_by_index[owners[request_id]]
        rows = records.get(request_id, [])
        billed = _invoice_cost(line)
        ledger = sum((row.cost for row in rows), Decimal(0))
        if sent.killed:
            category, floor = "killed", billed
        elif sent.plan.kind.startswith("lie-"):
            category, floor = "lied", billed
        elif sent.aborted or line.cut:
            _, _, _, output_price = MODELS[line.model]
            category, floor = "client left", billed - IN_FLIGHT_TOKENS * output_price
        else:
            category, floor = "honest", billed
        miss = ledger - billed if category == "honest" else min(ledger - floor, Decimal(0))
        books.categories[category].add(billed, ledger, miss)
        what = (f"{request_id} ({sent.plan.model}, {sent.plan.content}, "
                f"stream={bool(sent.plan.body.get('stream'))}, {sent.plan.action}): invoice "
                f"${billed} ({line.prompt_tokens}+{line.completion_tokens} tokens)")
        if len(rows) != 1:
            books.problem("(c) one ledger row per invoiced request", f"{what}: {len(rows)} rows",
                          model=sent.plan.model)
            continue
        row = rows[0]
        if category == "client left":
            books.in_flight.append((line.completion_tokens - row.completion_tokens,
                                    f"{what}, ledger ${row.cost} ({row.prompt_tokens}+"
                                    f"{row.completion_tokens})"))
        if miss:
            books.problem(f"(c) ledger vs invoice: {category}",
                          f"{what}, ledger ${row.cost} ({row.prompt_tokens}+"
                          f"{row.completion_tokens}, {row.status}/{row.error_kind or '-'})",
                          model=sent.plan.model)
        if billed > row.estimated_cost:
            books.reservation_over.add(billed, row.estimated_cost, row.estimated_cost - billed)
            books.problem("(e) the reservation bounds the bill",
                          f"{what}, reserved ${row.estimated_cost} "
                          f"({row.estimated_prompt_tokens} prompt tokens estimated)",
                          model=sent.plan.model)

    for request_id, rows in records.items():
        if request_id not in invoice:
            books.ledger_only.add(Decimal(0), sum(r.cost for r in rows), Decimal(0))
            books.ledger_only_kinds.update(f"{r.status}/{r.error_kind or '-'}"
                                           f"{'' if r.cost else ' (free)'}" for r in rows)
            for row in rows:
                if row.cost:
                    books.charged_unbilled.append(
                        f"{request_id} ({row.requested_model}, stream={row.stream}, "
                        f"{row.status}/{row.error_kind or '-'}): charged ${row.cost} "
                        f"({row.prompt_tokens}+{row.completion_tokens}), never billed")

    # (d) every 200 the client received has its ledger row.
    for sent in run.sent:
        if sent.status == 200 and len(records.get(sent.request_id, [])) != 1:
            books.problem("(d) a ledger row per 200",
                          f"{sent.request_id or '(no id)'} ({sent.plan.model}, "
                          f"{sent.plan.action}{', killed' if sent.killed else ''}"
                          f"{', broken off' if sent.broken else ''}): "
                          f"{len(records.get(sent.request_id, []))} rows", model=sent.plan.model)

    # (a) counters within their limits and equal to the ledger; (b) nothing held.
    for counter in BudgetCounter.objects.select_related("budget"):
        limit = counter.budget.limit_for(counter.period)
        name = f"{counter.budget} ({counter.period})"
        if limit is not None and counter.spent > limit:
            books.problem("(a) spent within the limit",
                          f"{name}: spent ${counter.spent} of ${limit}")
        ledger = ledger_spent(budget=counter.budget, period=counter.period,
                              start=counter.period_start).quantize(USD)
        if ledger != counter.spent:
            books.problem("(a) counter equals the ledger",
                          f"{name}: counter ${counter.spent}, ledger ${ledger}")
        if counter.reserved:
            books.problem("(b) nothing reserved", f"{name}: ${counter.reserved} reserved")
    for reservation in BudgetReservation.objects.all():
        books.problem("(b) no reservation left",
                      f"{reservation.request_id}: ${reservation.amount} since "
                      f"{reservation.created_at:%H:%M:%S}")
    return books


def _counts(counter: Counter) -> str:
    return ", ".join(f"{name} {n}" for name, n in sorted(counter.items(), key=str))


def _summary(run: Run, books: Books, invoice: dict[str, InvoiceLine]) -> str:
    answered = Counter(sent.status for sent in run.sent
                       if not (sent.killed or sent.broken or sent.aborted))
    aborted = Counter(sent.plan.action for sent in run.sent if sent.aborted)
    killed = sum(1 for sent in run.sent if sent.killed)
    broken = [sent for sent in run.sent if sent.broken]
    refusals = Counter(f"{sent.status} {sent.refusal}" for sent in run.sent if sent.refusal)
    lines = [
        f"requests {len(run.sent)} in {run.seconds:.1f}s; answered by status: "
        f"{_counts(answered)}; aborted by the client {sum(aborted.values())} "
        f"({_counts(aborted)}); killed {killed} (SIGKILL at {run.killed_at:.1f}s, "
        f"{run.upstream_at_kill} out at the provider); resent after the kill {run.unreached}; "
        f"broken off by a live gateway {len(broken)}"
        + (f" (e.g. {broken[0].plan.model}: {broken[0].broken})" if broken else ""),
        "error answers: " + "; ".join(f"{n}x {text}" for text, n in refusals.most_common(4)),
        f"invoiced requests {len(invoice)}, calls {sum(line.calls for line in invoice.values())}, "
        f"cut {sum(line.cut for line in invoice.values())}",
        f"{'category':<12}{'requests':>9}{'invoice $':>16}{'ledger $':>22}{'ledger-invoice $':>22}"
        f"{'violations':>11}{'worst $':>22}",
    ]
    total = Category()
    for name, row in [*books.categories.items(), ("ledger only", books.ledger_only)]:
        lines.append(f"{name:<12}{row.requests:>9}{row.invoice:>16.6f}{row.ledger:>22.6f}"
                     f"{row.ledger - row.invoice:>22.6f}{row.violations:>11}{row.worst:>22.6f}")
        total.requests += row.requests
        total.invoice += row.invoice
        total.ledger += row.ledger
    lines.append(f"{'total':<12}{total.requests:>9}{total.invoice:>16.6f}{total.ledger:>22.6f}"
                 f"{total.ledger - total.invoice:>22.6f}")
    over = books.reservation_over
    lines.append(f"reservation below the bill: {over.requests} requests, billed "
                 f"${over.invoice:.6f} against ${over.ledger:.6f} reserved, worst "
                 f"${over.worst:.6f}")
    if books.ledger_only_kinds:
        lines.append(f"ledger rows without a provider call: {_counts(books.ledger_only_kinds)}"
                     + "".join(f"; {line}" for line in books.charged_unbilled[:3]))
    if books.in_flight:
        gaps = sorted(books.in_flight)
        lines.append(f"client left: answer tokens billed but not charged: median "
                     f"{gaps[len(gaps) // 2][0]}, max {gaps[-1][0]} (bound {IN_FLIGHT_TOKENS}), "
                     f"{gaps[-1][1]}")
    for check, problems in sorted(books.problems.items()):
        models = books.problem_models.get(check)
        lines.append(f"{check}: {len(problems)}" + (f" ({_counts(models)})" if models else "")
                     + f", e.g. {problems[0]}")
    return "\n".join(lines)


def _errors_logged(logs: str) -> str:
    """Return the errors the gateway processes logged (JSON records at ERROR and above, with
    their exception's last line, and raw tracebacks), most frequent first."""
    errors: Counter = Counter()
    for line in logs.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            if re.match(r"^\s*[\w.]+(Error|Exception): ", line):
                errors[line.strip()[:160]] += 1
            continue
        if isinstance(record, dict) and record.get("level") in ("ERROR", "CRITICAL"):
            cause = (record.get("exc") or "").strip().splitlines()[-1:] or [""]
            errors[f"{record.get('message')} {cause[0]}"[:160]] += 1
    if not errors:
        return ""
    return "\ngateway errors: " + "; ".join(f"{n}x {text}" for text, n in errors.most_common(6))


# --- The test -------------------------------------------------------------------------------
@pytest.fixture(autouse=True)
def _postgres_only():
    if not is_postgres():
        pytest.skip("two gateway processes share one database only on PostgreSQL "
                    "(set DATABASE_URL=postgres://...)")


@pytest.fixture
def billing_provider():
    with run_fake_provider(billing=True) as server:
        yield server


@pytest.fixture
def accounts(transactional_db, make_api_key, billing_provider) -> list[str]:
    """Create the profiles on the billing provider and the teams' keys and budgets; return the
    keys' secrets."""
    for upstream, (short, provider, input_price, output_price) in MODELS.items():
        for kind, rules in BEHAVIOURS.items():
            ModelProfile.objects.create(
                name=f"{short}-{kind}", provider=provider, upstream_model=upstream,
                base_url=billing_provider.base_url, api_key_env=PROVIDER_KEY_ENV,
                options={"extra_headers": {"X-Fake-Behavior": rules}}, tier="standard",
                input_price_per_token=input_price, output_price_per_token=output_price,
                context_window=128000, max_output_tokens=512, supports_tools=True,
                supports_vision=True)
    invalidate_snapshot()
    keys = []
    for team, (team_limit, key_limit) in TEAMS.items():
        first = make_api_key(team=team, user=f"{team}-first")
        second = make_api_key(team=team, user=f"{team}-second")
        budget_set(scope="team", team=first.api_key.team, daily_limit=team_limit)
        budget_set(scope="key", api_key=first.api_key, daily_limit=key_limit)
        keys += [first.key, second.key]
    yield keys
    invalidate_snapshot()


def test_the_ledger_is_the_invoice(accounts, billing_provider):
    plans = _plans(random.Random(SEED), len(accounts))
    env = {
        PROVIDER_KEY_ENV: "sk-reconcile-provider-key",
        "BUDGET_HEARTBEAT_SECONDS": str(HEARTBEAT_SECONDS),
        "BUDGET_HOLDER_TIMEOUT_SECONDS": str(HOLDER_TIMEOUT_SECONDS),
        "PROVIDER_READ_TIMEOUT_SECONDS": "20",
        "PROVIDER_STREAM_IDLE_TIMEOUT_SECONDS": "20",
    }
    database_url = gateway_database_url()
    with GatewayProcess(database_url=database_url, env=env) as survivor, \
            GatewayProcess(database_url=database_url, env=env) as doomed:
        run = asyncio.run(_storm(plans, accounts, [survivor, doomed], billing_provider))
        billing_provider.wait_until_idle(timeout=30)
        # The survivor's sweep releases (and charges) what the killed process held.
        deadline = time.monotonic() + HOLDER_TIMEOUT_SECONDS + 5 * HEARTBEAT_SECONDS
        while BudgetReservation.objects.exists() and time.monotonic() < deadline:
            time.sleep(0.5)
        assert survivor.alive(), survivor.output()[-3000:]
        logs = survivor.output() + doomed.output()

    books = _reconcile(billing_provider, run)
    summary = _summary(run, books, billing_provider.invoice) + _errors_logged(logs)
    print(summary)
    assert not books.problems, summary
