"""`manage.py budget_report`: spend, savings and utilization per scope for this day or month."""

import json

from budgets.management.base import BudgetCommand
from budgets.reports import spend_table
from budgets.selectors import spend_report


class Command(BudgetCommand):
    help = ("Print spend, cache savings, budget utilization and requests refused by each budget, "
            "per scope (global, team, user, key).")

    def add_arguments(self, parser):
        parser.add_argument("--team", metavar="NAME", help="Only this team, its users and keys.")
        parser.add_argument("--period", choices=["day", "month"], default="month",
                            help="The current UTC day or month (default: month).")
        parser.add_argument("--json", action="store_true", help="Print JSON instead of a table.")

    def handle(self, *args, **opts):
        if opts["team"]:
            self.get_team(opts["team"])
        rows = spend_report(period=opts["period"], team_name=opts["team"])
        if opts["json"]:
            self.stdout.write(json.dumps({"period": opts["period"],
                                          "rows": [r.as_dict() for r in rows]}, indent=2))
            return
        for line in spend_table(rows, period=opts["period"]):
            self.stdout.write(line)
