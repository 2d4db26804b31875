"""Create an API key for a team and user (both created when missing); print it once."""

import json

from django.core.management.base import BaseCommand, CommandError

from llmops.models import ApiKeyTier
from llmops.services import api_key_create


class Command(BaseCommand):
    help = "Create an llmops API key. The full key is printed once and never stored."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--team", required=True, help="Team (tenant) name; created if missing.")
        parser.add_argument("--user", required=True, help="Username; created if missing.")
        parser.add_argument("--tier", default=ApiKeyTier.STANDARD, choices=ApiKeyTier.values,
                            help="Key tier (default: standard).")
        parser.add_argument("--name", default="", help="A label for the key.")
        parser.add_argument("--json", action="store_true",
                            help="Print one JSON object with key, prefix, team and user.")

    def handle(self, *args, **options) -> None:
        if not options["team"].strip() or not options["user"].strip():
            raise CommandError("--team and --user must not be empty.")
        issued = api_key_create(team_name=options["team"].strip(),
                                username=options["user"].strip(),
                                tier=options["tier"], name=options["name"])
        if options["json"]:
            self.stdout.write(json.dumps({
                "key": issued.key, "prefix": issued.api_key.prefix,
                "team": issued.api_key.team.name, "user": issued.api_key.user.get_username(),
                "tier": issued.api_key.tier,
            }))
        else:
            self.stdout.write(issued.key)
