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

(a) every budget counter's spend is within its limit and equals the ledger's sum for it, and no
    request is charged more than it reserved;
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
import random
import time
from collections import defaultdict
from decimal import Decimal

import pytest

from budgets.models import BudgetCounter, BudgetReservation, UsageRecord
from budgets.selectors import ledger_spent
from budgets.services import budget_set
from routing.models import ModelProfile
from routing.pricing import USD
from routing.selectors import invalidate_snapshot
from tests.toolkit.fakeprovider import FakeProvider, InvoiceLine, run_fake_provider
from tests.toolkit.gateway_process import GatewayProcess, gateway_database_url, is_postgres
from tests.toolkit.invoice_books import Books, errors_logged, summary
from tests.toolkit.invoice_traffic import BEHAVIOURS, MODELS, Run, plan_index, seeded_plans, storm
from tests.toolkit.rollups import assert_rollups_match_ledger

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
# but not yet read by the gateway when it stops reading. Answers here are paced at PACE_MS
# (25 ms, tests.toolkit.invoice_traffic) per one-word chunk and the provider stops at its next
# chunk once the gateway closes the upstream connection, so what is in flight is what the
# gateway had not parsed when the client's disconnect reached it, plus at most one chunk: 16
# tokens is ~8 chunks, 200 ms of a gateway event loop stalled by a loaded machine.
IN_FLIGHT_TOKENS = 16
PROVIDER_KEY_ENV = "RECONCILE_PROVIDER_KEY"

TEAMS = {  # team: (daily limit of the team, daily limit of its first key; the second has none)
    "recon-a": (Decimal("0.12"), Decimal("0.05")),
    "recon-b": (Decimal("0.20"), Decimal("0.08")),
    "recon-c": (Decimal("0.30"), Decimal("0.12")),
    "recon-d": (Decimal("0.50"), Decimal("0.20")),
}


# --- The checks -----------------------------------------------------------------------------
def _invoice_cost(line: InvoiceLine) -> Decimal:
    _, _, input_price, output_price = MODELS[line.model]
    return Decimal(line.prompt_tokens * input_price
                   + line.completion_tokens * output_price).quantize(USD)


def _plan_of_request_ids(provider: FakeProvider) -> dict[str, int]:
    """Return {gateway request id: plan index} from what the provider received."""
    return {request.headers["x-request-id"]: plan_index(request.body)
            for request in provider.requests if request.headers.get("x-request-id")}



def _reconcile(provider: FakeProvider, run: Run) -> Books:
    """Hold the ledger and the counters against the provider's invoice: checks (a) to (e)."""
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
        if row.cost > row.estimated_cost:
            # How a limit leaks: a charge past what admission held for it.
            books.problem("(a) no charge above its reservation",
                          f"{what}, ledger ${row.cost} ({row.prompt_tokens}+"
                          f"{row.completion_tokens}, {row.status}/{row.error_kind or '-'}), "
                          f"reserved ${row.estimated_cost}", model=sent.plan.model)
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
    plans = seeded_plans(random.Random(SEED), len(accounts), requests=REQUESTS)
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
        run = asyncio.run(storm(plans, accounts, [survivor, doomed], billing_provider,
                                concurrency=CONCURRENCY, kill_at=KILL_AT,
                                kill_min_upstream=KILL_MIN_UPSTREAM))
        billing_provider.wait_until_idle(timeout=30)
        # The survivor's sweep releases (and charges) what the killed process held.
        deadline = time.monotonic() + HOLDER_TIMEOUT_SECONDS + 5 * HEARTBEAT_SECONDS
        while BudgetReservation.objects.exists() and time.monotonic() < deadline:
            time.sleep(0.5)
        assert survivor.alive(), survivor.output()[-3000:]
        logs = survivor.output() + doomed.output()

    books = _reconcile(billing_provider, run)
    report = (summary(run, books, billing_provider.invoice, in_flight_tokens=IN_FLIGHT_TOKENS)
              + errors_logged(logs))
    print(report)
    assert not books.problems, report
    # Two gateway processes (one killed) settled every kind of request: the roll-ups their
    # settlements wrote add up to the ledger.
    assert_rollups_match_ledger()
