"""`manage.py reconcile_budgets`: rebuild budget counters from the ledger and report drift."""

import json
from decimal import Decimal

from budgets.management.base import BudgetCommand
from budgets.services import budget_counters_reconcile, counters_archived, ledger_archived_before


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
        archived, cut = counters_archived(), ledger_archived_before()
        if opts["json"]:
            self.stdout.write(json.dumps({
                "fixed": not opts["dry_run"], "drifts": [d.as_dict() for d in drifts],
                "archived_before": cut.isoformat() if cut else None,
                "not_checked": len(archived)}, indent=2))
            return
        if archived:
            self.stdout.write(self.style.WARNING(
                f"{len(archived)} counter(s) not checked: their period began before "
                f"{cut:%Y-%m-%d %H:%M} UTC, and the ledger rows before then were archived "
                f"(archive_ledger)."))
        for drift in drifts:
            self.stdout.write(str(drift))
        verb = "found" if opts["dry_run"] else "fixed"
        style = self.style.WARNING if drifts else self.style.SUCCESS
        self.stdout.write(style(f"{len(drifts)} drifting counter(s) {verb}."))
