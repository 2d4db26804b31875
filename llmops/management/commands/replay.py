"""`manage.py replay LOG.jsonl`: send a request log through a key, or (`--estimate`) price it
without calling a provider."""

import asyncio
import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from budgets.money import format_usd
from llmops.models import ApiKeyTier, Team
from llmops.replay import (
    DEFAULT_OUTPUT_TOKENS,
    ReplayCaller,
    ReplayError,
    ReplayEstimate,
    read_batch,
    replay_estimate,
)
from llmops.replay_send import DEFAULT_URL, ReplayBill, replay_send


def estimate_lines(result: ReplayEstimate) -> list[str]:
    """Return the estimate as text lines."""
    usd = lambda amount: format_usd(amount, decimals=6)  # noqa: E731
    cut = result.as_dict()["bill_cut"]
    lines = [
        f"requests priced        {result.requests}",
        f"bill as sent           {usd(result.bill_as_sent)}",
        f"estimated bill         {usd(result.bill_estimated)}"
        + ("" if cut is None else f"  ({cut:.1%} less)"),
        f"  exact cache hits     {usd(result.saved_exact)}  ({result.exact_hits} requests)",
        f"  semantic cache hits  {usd(result.saved_semantic)}  ({result.semantic_hits} requests)",
        f"  routing (net)        {usd(result.saved_routing)}",
        f"routed to the strong tier {result.routed_strong} of {result.routed}",
    ]
    lines += [f"  {model}: {count} requests" for model, count in sorted(result.models.items())]
    lines += [f"skipped ({reason}): {count}" for reason, count in sorted(result.skipped.items())]
    return lines


def bill_lines(result: ReplayBill) -> list[str]:
    """Return the bill of a sent log as text lines."""
    usd = lambda amount: format_usd(amount, decimals=6)  # noqa: E731
    cut = result.as_dict()["bill_cut"]
    lines = [
        f"requests sent          {result.sent}",
        f"bill                   {usd(result.bill)}"
        + ("" if cut is None else f"  ({cut:.1%} less than as sent)"),
        f"bill as sent           {usd(result.bill_as_sent)}",
        f"saved                  {usd(result.bill_as_sent - result.bill)}",
    ]
    lines += [f"status {status}: {count}" for status, count in sorted(result.statuses.items())]
    lines += [f"cache {status}: {count}" for status, count in sorted(result.cache.items())]
    lines += [f"skipped ({reason}): {count}" for reason, count in sorted(result.skipped.items())]
    return lines


class Command(BaseCommand):
    help = ("Replay a request log in the OpenAI Batch input format (one {custom_id, method, url, "
            "body} per line): without --estimate each line is sent to the gateway at --url with "
            "the key, and the bill is printed against the bill as sent; --estimate calls no "
            "provider: it simulates the cache in a scratch store and routing's decisions, "
            "prices everything and prints the estimated bill "
            "against the bill as sent (docs/savings.md).")

    def add_arguments(self, parser):
        parser.add_argument("log", type=Path, help="The Batch input file (JSONL).")
        parser.add_argument("--estimate", action="store_true",
                            help="Call no provider: simulate the cache and routing, and price.")
        parser.add_argument("--team", metavar="NAME",
                            help="Whose traffic it is: the team's reference model, cache policy "
                                 "and budgets (default: the gateway-wide settings).")
        parser.add_argument("--tier", choices=ApiKeyTier.values, default=ApiKeyTier.STANDARD,
                            help="The tier of the keys that sent it (routing's quality bar).")
        parser.add_argument("--output-tokens", type=int, default=DEFAULT_OUTPUT_TOKENS,
                            help="Answer length priced per request, capped by its max_tokens "
                                 f"(default {DEFAULT_OUTPUT_TOKENS}).")
        parser.add_argument("--url", default=DEFAULT_URL,
                            help=f"Sending: the gateway's base URL (default {DEFAULT_URL}).")
        parser.add_argument("--key", help="Sending: the API key the requests go through.")
        parser.add_argument("--key-file", type=Path,
                            help="Sending: a file holding the API key (keeps it off the "
                                 "command line).")
        parser.add_argument("--concurrency", type=int, default=4,
                            help="Sending: requests in flight at once (default 4).")
        parser.add_argument("--rate", type=float,
                            help="Sending: at most this many requests started per second.")
        parser.add_argument("--output", type=Path,
                            help="Sending: write each line's result here, in the Batch output "
                                 "format (JSONL).")
        parser.add_argument("--json", action="store_true", help="Print JSON instead of text.")
        parser.add_argument("--no-progress", action="store_true", help="Hide the progress bar.")

    def handle(self, *args, **opts):
        if not opts["estimate"]:
            self._send(opts)
            return
        if opts["output_tokens"] < 1:
            raise CommandError("--output-tokens must be at least 1.")
        team = None
        if opts["team"]:
            team = Team.objects.filter(name=opts["team"]).first()
            if team is None:
                raise CommandError(f"No team {opts['team']!r}")
        lines = self._read(opts)
        bar = tqdm(total=len(lines), unit="request", file=self.stderr,
                   disable=opts["no_progress"])
        try:
            result = asyncio.run(replay_estimate(
                lines, caller=ReplayCaller(team=team, tier=opts["tier"]),
                output_tokens=opts["output_tokens"], progress=bar.update))
        finally:
            bar.close()
        if opts["json"]:
            self.stdout.write(json.dumps(result.as_dict(), indent=2))
            return
        for line in estimate_lines(result):
            self.stdout.write(line)

    def _read(self, opts) -> list[tuple[int, dict]]:
        try:
            return list(read_batch(opts["log"]))
        except (OSError, ReplayError) as exc:
            raise CommandError(f"Cannot read {opts['log']}: {exc}") from None

    def _key(self, opts) -> str:
        if opts["key_file"] is not None:
            try:
                key = opts["key_file"].read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise CommandError(f"Cannot read {opts['key_file']}: {exc}") from None
        else:
            key = (opts["key"] or "").strip()
        if not key:
            raise CommandError("Sending a log needs --key or --key-file (or use --estimate).")
        return key

    def _send(self, opts) -> None:
        key = self._key(opts)
        if opts["concurrency"] < 1:
            raise CommandError("--concurrency must be at least 1.")
        if opts["rate"] is not None and opts["rate"] <= 0:
            raise CommandError("--rate must be positive.")
        lines = self._read(opts)
        bar = tqdm(total=len(lines), unit="request", file=self.stderr,
                   disable=opts["no_progress"])
        try:
            result = asyncio.run(replay_send(lines, url=opts["url"], key=key,
                                             concurrency=opts["concurrency"],
                                             rate=opts["rate"], progress=bar.update))
        finally:
            bar.close()
        if opts["output"] is not None:
            with opts["output"].open("w", encoding="utf-8") as out:
                for row in result.results:
                    out.write(json.dumps(row) + "\n")
        if opts["json"]:
            self.stdout.write(json.dumps(result.as_dict(), indent=2))
            return
        for line in bill_lines(result):
            self.stdout.write(line)
