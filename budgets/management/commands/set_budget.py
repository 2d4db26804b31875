"""`manage.py set_budget`: create or update the budget of a key, user, team, or the gateway."""

import json
from decimal import Decimal

from budgets.management.base import BudgetCommand, usd
from budgets.models import BudgetAction
from budgets.reports import budget_as_dict, budget_line
from budgets.services import KEEP, budget_set


class Command(BudgetCommand):
    help = ("Create or update a budget. Options left out keep their current value; "
            "pass 'none' to remove a limit.")

    def add_arguments(self, parser):
        target = parser.add_mutually_exclusive_group(required=True)
        target.add_argument("--key", metavar="PREFIX", help="API key prefix (llmops-PREFIX.…).")
        target.add_argument("--user", metavar="USERNAME", help="User (all of their keys).")
        target.add_argument("--team", metavar="NAME", help="Team (all of its keys).")
        target.add_argument("--global", dest="is_global", action="store_true",
                            help="The whole gateway.")
        parser.add_argument("--daily", type=usd, default=KEEP, metavar="USD",
                            help="Limit per UTC day ('none': no daily limit).")
        parser.add_argument("--monthly", type=usd, default=KEEP, metavar="USD",
                            help="Limit per UTC calendar month ('none': no monthly limit).")
        parser.add_argument("--total", type=usd, default=KEEP, metavar="USD",
                            help="Lifetime limit ('none': no lifetime limit).")
        parser.add_argument("--alert-threshold", type=Decimal, default=KEEP, metavar="FRACTION",
                            help="Alert when spend reaches this fraction of a limit (default "
                                 "0.8 for a new budget).")
        action = parser.add_mutually_exclusive_group()
        action.add_argument("--alert-only", dest="action", action="store_const",
                            const=BudgetAction.ALERT_ONLY, default=KEEP,
                            help="Only alert at the limit; never refuse requests.")
        action.add_argument("--block", dest="action", action="store_const",
                            const=BudgetAction.BLOCK,
                            help="Refuse requests that would pass the limit (the default).")
        parser.add_argument("--webhook", default=KEEP, metavar="URL",
                            help="POST alerts as JSON to this URL ('' to remove).")
        parser.add_argument("--email", default=KEEP, metavar="ADDRESS",
                            help="Email alerts to this address ('' to remove).")
        active = parser.add_mutually_exclusive_group()
        active.add_argument("--disable", dest="is_active", action="store_false", default=KEEP,
                            help="Keep the budget but stop enforcing it.")
        active.add_argument("--enable", dest="is_active", action="store_true",
                            help="Enforce the budget again.")
        parser.add_argument("--json", action="store_true", help="Print the budget as JSON.")

    def handle(self, *args, **opts):
        scope, target = self.get_target(key=opts["key"], user=opts["user"], team=opts["team"])
        budget = budget_set(
            scope=scope, **target, daily_limit=opts["daily"], monthly_limit=opts["monthly"],
            total_limit=opts["total"], alert_threshold=opts["alert_threshold"],
            action=opts["action"], notify_webhook_url=opts["webhook"], notify_email=opts["email"],
            is_active=opts["is_active"],
        )
        if opts["json"]:
            self.stdout.write(json.dumps(budget_as_dict(budget), indent=2))
            return
        self.stdout.write(self.style.SUCCESS(budget_line(budget)))
