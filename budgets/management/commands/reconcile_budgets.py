"""`manage.py reconcile_budgets`: rebuild budget counters from the ledger and report drift."""

import json
from decimal import Decimal

from budgets.management.base import BudgetCommand
from budgets.services import budget_counters_reconcile


class Command(BudgetCommand):
    help = ("Recompute every budget counter's spent (from the usage ledger) and reserved (from "
            "open reservations), report the counters that drifted and fix them.")

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true",
                            help="Only report drift; change nothing.")
        parser.add_argument("--tolerance", type=Decimal, default=Decimal("0.000001"),
                            help="Ignore differences up to this many USD (default 0.000001).")
        parser.add_argument("--json", action="store_true", help="Print the drifts as JSON.")

    def handle(self, *args, **opts):
        drifts = budget_counters_reconcile(fix=not opts["dry_run"], tolerance=opts["tolerance"])
        if opts["json"]:
            self.stdout.write(json.dumps({"fixed": not opts["dry_run"],
                                          "drifts": [d.as_dict() for d in drifts]}, indent=2))
            return
        for drift in drifts:
            self.stdout.write(str(drift))
        verb = "found" if opts["dry_run"] else "fixed"
        style = self.style.WARNING if drifts else self.style.SUCCESS
        self.stdout.write(style(f"{len(drifts)} drifting counter(s) {verb}."))
