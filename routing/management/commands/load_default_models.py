"""Install the default model profiles (real providers and three simulated ones); idempotent."""

import json as _json

from django.core.management.base import BaseCommand

from routing.services import profiles_load_defaults


class Command(BaseCommand):
    help = ("Create the default model profiles (OpenAI, Gemini, Anthropic at current public "
            "prices, simulated-efficient/-standard/-premium, and the embedding models "
            "text-embedding-3-small/-large and the free local llmops-minilm). Existing "
            "profiles are kept unless --update.")

    def add_arguments(self, parser):
        parser.add_argument("--update", action="store_true",
                            help="Also reset existing default profiles to the shipped values.")
        parser.add_argument("--json", action="store_true", help="Print the result as JSON.")

    def handle(self, *args, update: bool, json: bool, **options):
        result = profiles_load_defaults(update=update)
        if json:
            self.stdout.write(_json.dumps(result, indent=2))
            return
        for name, status in result.items():
            self.stdout.write(f"{status:<10} {name}")

