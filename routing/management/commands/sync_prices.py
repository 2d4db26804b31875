"""Update model profile prices and context windows from a price catalog JSON file."""

import json as _json

from django.core.management.base import BaseCommand, CommandError

from routing.catalog import catalog_load
from routing.services import profiles_sync_prices


class Command(BaseCommand):
    help = ("Import prices and context windows from a catalog in the "
            "model_prices_and_context_window.json schema into existing profiles. Profiles the "
            "catalog lacks are listed and kept, never dropped.")

    def add_arguments(self, parser):
        parser.add_argument("file", help="Path to the catalog JSON file.")
        parser.add_argument("--dry-run", action="store_true",
                            help="Show the diff without writing anything.")
        parser.add_argument("--json", action="store_true", help="Print the report as JSON.")

    def handle(self, *args, file: str, dry_run: bool, json: bool, **options):
        try:
            catalog = catalog_load(file)
        except (OSError, ValueError) as exc:
            raise CommandError(f"Cannot read catalog {file}: {exc}") from exc
        report = profiles_sync_prices(catalog=catalog, dry_run=dry_run)
        if json:
            self.stdout.write(_json.dumps({
                "dry_run": dry_run,
                "changes": {name: {f: [_str(o), _str(n)] for f, (o, n) in fields.items()}
                            for name, fields in report.changes.items()},
                "matched": report.matched,
                "not_in_catalog": report.not_in_catalog,
            }, indent=2))
            return
        verb = "would change" if dry_run else "changed"
        for name, fields in report.changes.items():
            self.stdout.write(f"{name} ({report.matched[name]}) {verb}:")
            for field, (old, new) in fields.items():
                self.stdout.write(f"  {field}: {_str(old)} -> {_str(new)}")
        unchanged = sorted(set(report.matched) - set(report.changes))
        if unchanged:
            self.stdout.write(f"unchanged: {', '.join(unchanged)}")
        if report.not_in_catalog:
            self.stdout.write(f"not in catalog (kept as is): {', '.join(report.not_in_catalog)}")
        self.stdout.write(f"{len(report.changes)} profile(s) {verb}.")


def _str(value) -> str | None:
    if value is None:
        return None
    return format(value, "f") if not isinstance(value, int) else str(value)
