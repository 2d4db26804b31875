"""Pre-load the cache from a JSONL file of prompts and answers."""

import json
from pathlib import Path

from django.core.management.base import CommandError
from tqdm import tqdm

from semcache.management.base import SemcacheCommand


class Command(SemcacheCommand):
    in_process_consequence = "the answers would be stored in its own memory and lost when it exits."
    help = (
        "Store answers from FILE.jsonl. Each line: {\"team\": name|id, \"model\": \"auto\", "
        "\"messages\": [...] or \"prompt\": \"...\", \"answer\": \"...\" or a message, optional "
        "\"params\", \"usage\", \"cost\", \"finish_reason\", \"ttl_hours\"}."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", type=Path, help="JSONL file of prompts and answers.")
        parser.add_argument("--team", help="Team (name or id) for lines that name none.")
        parser.add_argument("--model", default="auto", help="Model scope for lines without one.")
        parser.add_argument("--batch-size", type=int, default=64, help="Texts embedded at once.")
        parser.add_argument("--no-progress", action="store_true", help="Hide the progress bar.")
        self.add_json_argument(parser)

    def handle(self, *args, **options):
        from semcache.services import cache_warm
        from semcache.store import StoreUnavailable

        self.require_shared_store()
        path = options["file"]
        if not path.exists():
            raise CommandError(f"No such file: {path}")
        team_ids: dict[str, int] = {}
        items = []
        with open(path, encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise CommandError(f"Line {number}: not JSON ({exc}).") from exc
                team = str(row.get("team") or options["team"] or "")
                if not team:
                    raise CommandError(f"Line {number}: no team (give one or use --team).")
                if team not in team_ids:
                    team_ids[team] = self.team_id(team)
                messages = row.get("messages") or [{"role": "user", "content": row.get("prompt")}]
                answer = row.get("answer")
                if not messages[-1].get("content") or answer is None:
                    raise CommandError(f"Line {number}: needs messages (or prompt) and answer.")
                items.append({**row, "team_id": team_ids[team], "messages": messages,
                              "model": row.get("model") or options["model"]})
        bar = tqdm(total=len(items), unit="entry", disable=options["no_progress"] or
                   options["json"], file=self.stderr)
        try:
            stored = cache_warm(items, batch_size=options["batch_size"], progress=bar.update)
        except StoreUnavailable as exc:
            raise CommandError(f"The cache store is unreachable: {exc}") from exc
        finally:
            bar.close()
        if options["json"]:
            self.write_json({"stored": stored})
        else:
            self.stdout.write(self.style.SUCCESS(f"Stored {stored} entries."))
