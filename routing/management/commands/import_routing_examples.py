"""Import labeled routing outcomes (prompt, model or tier, score) into the RoutingExample table."""

import json as _json

from django.core.management.base import BaseCommand, CommandError

from routing.examples import parse_target, read_labels
from routing.services import embedder_embed, routing_examples_import


class Command(BaseCommand):
    help = ("Embed and store labeled prompts for the learned router. Accepts JSONL rows of "
            "{prompt, score, model|tier} or outcome rows {prompt, weak_correct, strong_correct} "
            "(mapped with --weak/--strong). Rows already stored are skipped.")

    def add_arguments(self, parser):
        parser.add_argument("file", help="JSONL file of labeled prompts.")
        parser.add_argument("--weak", default="tier:efficient",
                            help="Target of weak_correct labels: tier:NAME or model:NAME "
                                 "(default tier:efficient).")
        parser.add_argument("--strong", default="tier:premium",
                            help="Target of strong_correct labels (default tier:premium).")
        parser.add_argument("--source", default="",
                            help="Label source stored with each row (default: the file name).")
        parser.add_argument("--limit", type=int, default=None,
                            help="Import at most this many input rows.")
        parser.add_argument("--json", action="store_true", help="Print the result as JSON.")

    def handle(self, *args, file: str, weak: str, strong: str, source: str, limit: int | None,
               json: bool, **options):
        from semcache.embedder import get_embedder

        try:
            targets = {"weak": parse_target(weak), "strong": parse_target(strong)}
            labels = read_labels(file, targets=targets, source=source or file, limit=limit)
        except (OSError, ValueError) as exc:
            raise CommandError(str(exc)) from exc
        added = routing_examples_import(labels=labels, embed=embedder_embed(get_embedder()))
        result = {"file": file, "labels": len(labels), "added": added}
        if json:
            self.stdout.write(_json.dumps(result))
        else:
            self.stdout.write(f"{added} new example(s) from {len(labels)} label(s) in {file}.")
