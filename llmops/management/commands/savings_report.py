"""`manage.py savings_report`: spend, savings by source, shadow estimates, strong-model share."""

import json
from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from budgets.money import format_usd
from llmops.models import Team
from llmops.observability.savings import SavingsSummary, savings_summary, verified_hits
from semcache.management.base import SemcacheCommand


def _share(part: int, whole: int) -> str:
    return f"{part / whole:.1%} ({part} of {whole})" if whole else "–"


def summary_lines(summary: SavingsSummary) -> list[str]:
    """Return the report as aligned text lines."""
    usd = lambda amount: format_usd(amount, decimals=6)  # noqa: E731
    s = summary
    return [
        f"requests                  {s.requests}",
        f"spend                     {usd(s.spend)}",
        f"without llmops            {usd(s.without_llmops)}",
        "realized savings:",
        f"  exact cache hits        {usd(s.saved_exact)}  ({s.exact_hits} requests)",
        f"  semantic cache hits     {usd(s.saved_semantic)}  ({s.semantic_hits} requests)",
        f"  routing (net)           {usd(s.saved_routing)}  (dearer than the reference: "
        f"{usd(s.routing_extra_cost)})",
        f"  total                   {usd(s.saved_total)}",
        f"routing strong-model share {_share(s.routed_strong, s.routed)}",
        f"shadow mode ({s.shadow_requests} requests served as sent), would have saved:",
        f"  exact cache hits        {usd(s.shadow_saved_exact)}  ({s.shadow_exact_hits} requests)",
        f"  semantic cache hits     {usd(s.shadow_saved_semantic)}  "
        f"({s.shadow_semantic_hits} requests)",
        f"  routing (net)           {usd(s.shadow_saved_routing)}",
        f"  total                   {usd(s.shadow_saved_total)}",
        f"  would-route strong share {_share(s.shadow_routed_strong, s.shadow_routed)}",
        f"verified hits: {s.verifications} background calls, {usd(s.verification_cost)}",
    ]


def precision_lines(verified: dict | None) -> list[str]:
    """Return the verified-hit precision (overall, then per namespace) as text lines."""
    if verified is None:
        return ["verified-hit precision: the cache store is unreachable"]
    verdicts = verified["verified_agree"] + verified["verified_disagree"]
    if not verdicts:
        return ["verified-hit precision: no verdicts yet"]
    low, high = verified["precision_interval"]
    lines = [f"verified-hit precision    {verified['precision']:.1%}  95% [{low:.1%}, {high:.1%}]"
             f"  ({verified['verified_agree']} of {verdicts} agreed; all time)"]
    for row in verified["namespaces"]:
        low, high = row["precision_interval"]
        n = row["verified_agree"] + row["verified_disagree"]
        lines.append(f"  {row['namespace'][:12]} {row['model_scope']:<20} threshold "
                     f"{row['threshold']:.4f}  {row['precision']:.1%} [{low:.1%}, {high:.1%}]"
                     f"  ({row['verified_agree']}/{n})")
    return lines


class Command(BaseCommand):
    help = ("Print spend, realized savings by source (exact hits, semantic hits, routing), shadow "
            "mode's estimates and routing's strong-model share, from the ledger "
            "(docs/savings.md).")

    def add_arguments(self, parser):
        parser.add_argument("--team", metavar="NAME", help="Only this team's requests.")
        parser.add_argument("--since", default="7d",
                            help="The window: requests in the last 90s, 15m, 2h, 7d... "
                                 "(default: 7d).")
        parser.add_argument("--json", action="store_true", help="Print JSON instead of text.")

    def handle(self, *args, **opts):
        team = None
        if opts["team"]:
            team = Team.objects.filter(name=opts["team"]).first()
            if team is None:
                raise CommandError(f"No team {opts['team']!r}")
        since = timezone.now() - timedelta(seconds=SemcacheCommand.seconds(opts["since"]))
        summary = savings_summary(since=since, team_id=team.pk if team else None)
        verified = verified_hits(team_id=team.pk if team else None)
        if opts["json"]:
            self.stdout.write(json.dumps({"since": since.isoformat(),
                                          "team": team.name if team else None,
                                          **summary.as_dict(), "verified_hits": verified},
                                         indent=2))
            return
        scope = f"team {team.name}" if team else "all teams"
        self.stdout.write(f"Savings since {since:%Y-%m-%d %H:%M} UTC, {scope}")
        for line in summary_lines(summary) + precision_lines(verified):
            self.stdout.write(line)
