"""`manage.py replay LOG.jsonl --estimate`: the estimated bill of a request log, no provider."""

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


class Command(BaseCommand):
    help = ("Replay a request log in the OpenAI Batch input format (one {custom_id, method, url, "
            "body} per line). --estimate calls no provider: it simulates the cache in a scratch "
            "store and routing's decisions, prices everything and prints the estimated bill "
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
        parser.add_argument("--json", action="store_true", help="Print JSON instead of text.")
        parser.add_argument("--no-progress", action="store_true", help="Hide the progress bar.")

    def handle(self, *args, **opts):
        if not opts["estimate"]:
            raise CommandError("Only --estimate is available: replay calls no provider yet.")
        if opts["output_tokens"] < 1:
            raise CommandError("--output-tokens must be at least 1.")
        team = None
        if opts["team"]:
            team = Team.objects.filter(name=opts["team"]).first()
            if team is None:
                raise CommandError(f"No team {opts['team']!r}")
        try:
            lines = list(read_batch(opts["log"]))
        except (OSError, ReplayError) as exc:
            raise CommandError(f"Cannot read {opts['log']}: {exc}") from None
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
