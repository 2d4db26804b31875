"""The invoice reconciliation's books: what it found, per category of request and per check, and
the summary it prints (with the errors the gateway processes logged)."""

import json
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from decimal import Decimal

from tests.toolkit.fakeprovider import InvoiceLine
from tests.toolkit.invoice_traffic import Run


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



def counts(counter: Counter) -> str:
    return ", ".join(f"{name} {n}" for name, n in sorted(counter.items(), key=str))


def summary(run: Run, books: Books, invoice: dict[str, InvoiceLine], *,
            in_flight_tokens: int) -> str:
    answered = Counter(sent.status for sent in run.sent
                       if not (sent.killed or sent.broken or sent.aborted))
    aborted = Counter(sent.plan.action for sent in run.sent if sent.aborted)
    killed = sum(1 for sent in run.sent if sent.killed)
    broken = [sent for sent in run.sent if sent.broken]
    refusals = Counter(f"{sent.status} {sent.refusal}" for sent in run.sent if sent.refusal)
    lines = [
        f"requests {len(run.sent)} in {run.seconds:.1f}s; answered by status: "
        f"{counts(answered)}; aborted by the client {sum(aborted.values())} "
        f"({counts(aborted)}); killed {killed} (SIGKILL at {run.killed_at:.1f}s, "
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
        lines.append(f"ledger rows without a provider call: {counts(books.ledger_only_kinds)}"
                     + "".join(f"; {line}" for line in books.charged_unbilled[:3]))
    if books.in_flight:
        gaps = sorted(books.in_flight)
        lines.append(f"client left: answer tokens billed but not charged: median "
                     f"{gaps[len(gaps) // 2][0]}, max {gaps[-1][0]} (bound {in_flight_tokens}), "
                     f"{gaps[-1][1]}")
    for check, problems in sorted(books.problems.items()):
        models = books.problem_models.get(check)
        lines.append(f"{check}: {len(problems)}" + (f" ({counts(models)})" if models else "")
                     + f", e.g. {problems[0]}")
    return "\n".join(lines)


def errors_logged(logs: str) -> str:
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

