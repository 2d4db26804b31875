"""Export the judge's quality verdicts as routing examples for the learned router."""

import json as _json
from datetime import timedelta

from django.core.management.base import BaseCommand
from django.utils import timezone


class Command(BaseCommand):
    help = ("Store quality verdicts (from the sampled judge) as routing examples: the prompt, the "
            "model that answered and its score scaled to 0-1. Already exported rows are skipped.")

    def add_arguments(self, parser):
        parser.add_argument("--days", type=int, default=None,
                            help="Only verdicts from the last N days (default: all).")
        parser.add_argument("--json", action="store_true", help="Print the result as JSON.")

    def handle(self, *args, days: int | None, json: bool, **options):
        from llmops.observability.examples import quality_examples_export
        from routing.services import embedder_embed
        from semcache.embedder import get_embedder

        since = timezone.now() - timedelta(days=days) if days else None
        added = quality_examples_export(embed=embedder_embed(get_embedder()), since=since)
        if json:
            self.stdout.write(_json.dumps({"added": added}))
        else:
            self.stdout.write(f"{added} new routing example(s) from quality verdicts.")
