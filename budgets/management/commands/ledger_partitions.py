"""`manage.py ledger_partitions`: create the ledger's monthly partitions ahead and list them."""

import json

from django.core.management.base import CommandError

from budgets.management.base import BudgetCommand
from budgets.partitions import is_partitioned, ledger_partitions_ensure, partitions


class Command(BudgetCommand):
    help = ("PostgreSQL: create the ledger's monthly partitions for the current UTC month and "
            "--ahead months after it (idempotent; Celery beat does it too), then list every "
            "partition. On SQLite the ledger is one plain table and nothing is done.")

    def add_arguments(self, parser):
        parser.add_argument("--ahead", type=int, default=2,
                            help="Months after the current one to create (default 2).")
        parser.add_argument("--json", action="store_true", help="Print the result as JSON.")

    def handle(self, *args, **opts):
        if opts["ahead"] < 0:
            raise CommandError("--ahead must be 0 or more.")
        if not is_partitioned():
            raise CommandError("The ledger is not partitioned (PostgreSQL only, after migrate).")
        created = ledger_partitions_ensure(ahead=opts["ahead"])
        listed = [{"name": p.name, "default": p.is_default,
                   "from": p.lower.isoformat() if p.lower else None,
                   "to": p.upper.isoformat() if p.upper else None} for p in partitions()]
        if opts["json"]:
            self.stdout.write(json.dumps({"created": created, "partitions": listed}))
            return
        for name in created:
            self.stdout.write(self.style.SUCCESS(f"Created {name}."))
        for p in listed:
            span = "DEFAULT" if p["default"] else f"{p['from'] or 'MINVALUE'} → {p['to']}"
            self.stdout.write(f"{p['name']}: {span}")
