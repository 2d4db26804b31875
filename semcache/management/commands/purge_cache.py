"""Purge cached answers: by team, model scope, age, or all of them."""

from django.core.management.base import CommandError

from semcache.management.base import SemcacheCommand


class Command(SemcacheCommand):
    in_process_consequence = "it would purge nothing and report 0 entries."
    help = "Delete semantic cache entries (every gateway process drops them from its index)."

    def add_arguments(self, parser):
        parser.add_argument("--team", help="Team name or id ('shared': the opt-in shared pool).")
        parser.add_argument("--model", help="Model scope: the requested model name, or 'auto'.")
        parser.add_argument("--older-than", help="Only entries created longer ago (90s, 2h, 1d).")
        parser.add_argument("--all", action="store_true", help="Purge everything (no filter).")
        parser.add_argument("--dry-run", action="store_true", help="Count, delete nothing.")
        self.add_json_argument(parser)

    def handle(self, *args, **options):
        from semcache.services import cache_purge
        from semcache.store import StoreUnavailable

        self.require_shared_store()
        filtered = options["team"] or options["model"] or options["older_than"]
        if not filtered and not options["all"]:
            raise CommandError("Say what to purge: --team, --model, --older-than, or --all.")
        tenant = self.tenant_for(options["team"]) if options["team"] else None
        older = self.seconds(options["older_than"]) if options["older_than"] else None
        try:
            count = cache_purge(tenant=tenant, model_scope=options["model"],
                                older_than_seconds=older, dry_run=options["dry_run"])
        except StoreUnavailable as exc:
            raise CommandError(f"The cache store is unreachable: {exc}") from exc
        if options["json"]:
            self.write_json({"purged": 0 if options["dry_run"] else count,
                             "matched": count, "dry_run": options["dry_run"]})
        elif options["dry_run"]:
            self.stdout.write(f"Would purge {count} entries.")
        else:
            self.stdout.write(self.style.SUCCESS(f"Purged {count} entries."))
