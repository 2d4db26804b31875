"""`manage.py budget_report`: spend, savings and utilization per scope for this day or month."""

import json

from budgets.management.base import BudgetCommand
from budgets.money import format_usd
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
        header = ("SCOPE", "NAME", "REQUESTS", "SPENT", "SAVED", "HITS", "LIMIT", "USED",
                  "REFUSED", "REFUSED AMOUNT")
        table = [header]
        for r in rows:
            table.append((
                r.scope, r.name, str(r.requests), format_usd(r.spent, decimals=6),
                format_usd(r.saved, decimals=6), str(r.cache_hits),
                "-" if r.limit is None else format_usd(r.limit),
                "-" if r.utilization is None else f"{r.utilization:.1%}",
                str(r.refused), f"{r.refused_amount:.6f}",
            ))
        widths = [max(len(row[i]) for row in table) for i in range(len(header))]
        for row in table:
            cells = [c.ljust(w) if i < 2 else c.rjust(w)
                     for i, (c, w) in enumerate(zip(row, widths, strict=True))]
            self.stdout.write("  ".join(cells).rstrip())
        if len(table) == 1:
            self.stdout.write(f"(no spend and no budgets this {opts['period']})")
