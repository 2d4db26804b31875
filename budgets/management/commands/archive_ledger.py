"""`manage.py archive_ledger`: export raw ledger rows before a date to a CSV file, delete them."""

import json

from django.core.management.base import CommandError
from tqdm import tqdm

from budgets.management.base import BudgetCommand
from budgets.management.commands.rebuild_rollups import utc_day
from budgets.models import UsageRecord
from budgets.services import ledger_archive


class Command(BudgetCommand):
    help = ("Write the ledger rows created before a UTC day to a CSV file (gzipped if it ends in "
            ".gz), deleting them in small batches once on disk. Roll-ups and budget counters are "
            "untouched: reports keep their history; reconcile_budgets skips archived periods.")

    def add_arguments(self, parser):
        parser.add_argument("--before", type=utc_day, required=True, metavar="DATE",
                            help="Archive rows created before this UTC day (YYYY-MM-DD).")
        parser.add_argument("--to", required=True, metavar="FILE",
                            help="The CSV file to write (.csv or .csv.gz); must not exist.")
        parser.add_argument("--batch-size", type=int, default=5000,
                            help="Rows per delete transaction (default 5000).")
        parser.add_argument("--json", action="store_true", help="Print the result as JSON.")

    def handle(self, *args, **opts):
        from pathlib import Path

        if Path(opts["to"]).exists():
            raise CommandError(f"{opts['to']} exists: choose a new file.")
        if opts["batch_size"] < 1:
            raise CommandError("--batch-size must be at least 1.")
        total = UsageRecord.objects.filter(created_at__lt=opts["before"]).count()
        with tqdm(total=total, unit="rows", desc="archive_ledger", file=self.stderr._out,
                  disable=opts["json"]) as bar:
            rows = ledger_archive(before=opts["before"], to=opts["to"],
                                  batch_size=opts["batch_size"], progress=bar.update)
        if opts["json"]:
            self.stdout.write(json.dumps({"before": opts["before"].isoformat(),
                                          "to": opts["to"], "rows": rows}))
            return
        self.stdout.write(self.style.SUCCESS(
            f"Archived {rows} ledger rows created before {opts['before']:%Y-%m-%d} to "
            f"{opts['to']}."))
