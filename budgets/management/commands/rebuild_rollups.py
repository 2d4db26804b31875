"""`manage.py rebuild_rollups`: recompute the ledger's roll-ups from its raw rows."""

import json
from datetime import UTC, date, datetime, time, timedelta

from django.core.management.base import CommandError
from django.db.models import Max, Min
from tqdm import tqdm

from budgets.management.base import BudgetCommand
from budgets.models import RollupGrain, UsageRecord, UsageRollup
from budgets.rollups import day_start, rollups_rebuild


def utc_day(value: str) -> datetime:
    """Parse YYYY-MM-DD (argparse) as the start of that UTC day."""
    try:
        return datetime.combine(date.fromisoformat(value), time(), tzinfo=UTC)
    except ValueError:
        raise CommandError(f"Not a date (YYYY-MM-DD): {value!r}") from None


class Command(BudgetCommand):
    help = ("Recompute the roll-ups of whole UTC days from the ledger (idempotent). Days whose "
            "raw rows were archived would come back empty: rebuild what the ledger still holds, "
            "and only the coarse day grains (--coarse-only) of older days.")

    def add_arguments(self, parser):
        parser.add_argument("--since", type=utc_day, metavar="DATE",
                            help="First UTC day (YYYY-MM-DD; default: the ledger's first).")
        parser.add_argument("--until", type=utc_day, metavar="DATE",
                            help="UTC day to stop before (default: after the ledger's last).")
        parser.add_argument("--coarse-only", action="store_true",
                            help="Recompute only the per-key and per-model day rows, from the "
                                 "day rows (no raw row read: safe on archived days).")
        parser.add_argument("--json", action="store_true", help="Print the result as JSON.")

    def handle(self, *args, **opts):
        since, until = opts["since"], opts["until"]
        if since is None or until is None:
            if opts["coarse_only"]:  # every day that has day rows, archived ones included
                span = UsageRollup.objects.filter(grain=RollupGrain.DAY).aggregate(
                    first=Min("start"), last=Max("start"))
            else:
                span = UsageRecord.objects.aggregate(first=Min("created_at"),
                                                     last=Max("created_at"))
            if span["first"] is None:
                self.stdout.write("The ledger is empty: nothing to rebuild.")
                return
            since = since or span["first"]
            until = until or span["last"] + timedelta(microseconds=1)
        if until <= since:
            raise CommandError("--until must be after --since.")
        first, last = day_start(since), day_start(until - timedelta(microseconds=1))
        hours = ((last - first).days + 1) * 24
        with tqdm(total=hours, unit="h", desc="rebuild_rollups", file=self.stderr._out,
                  disable=opts["json"]) as bar:
            written = rollups_rebuild(since=since, until=until, coarse_only=opts["coarse_only"],
                                      progress=lambda _: bar.update())
        if opts["json"]:
            self.stdout.write(json.dumps({"since": since.isoformat(), "until": until.isoformat(),
                                          "rows": written}))
            return
        self.stdout.write(self.style.SUCCESS(
            f"Rebuilt roll-ups from {since:%Y-%m-%d} to {until:%Y-%m-%d %H:%M}: {written} rows."))
