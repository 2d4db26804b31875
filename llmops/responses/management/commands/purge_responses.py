"""Delete stored responses whose RESPONSES_STORE_TTL_DAYS have passed."""

import json

from django.core.management.base import BaseCommand

from llmops.responses.services import stored_responses_purge


class Command(BaseCommand):
    help = "Delete expired stored responses (POST /v1/responses with store=true)."

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true", help="Print the result as JSON.")

    def handle(self, *args, **options):
        deleted = stored_responses_purge()
        if options["json"]:
            self.stdout.write(json.dumps({"deleted": deleted}))
        else:
            self.stdout.write(f"Deleted {deleted} expired stored response(s).")
