"""Evaluate the cache decision on labelled question pairs (hit rate, precision, false hits)."""

from pathlib import Path

from django.conf import settings
from django.core.management.base import CommandError

from semcache.management.base import SemcacheCommand


class Command(SemcacheCommand):
    help = (
        "Store every text_a of PAIRS.jsonl, query every text_b, and report the decision's "
        "(the cosine after the hard guards) hit rate on duplicates, precision of hits and false "
        "hits per 1,000 queries, beside plain cosine thresholds 0.80-0.97."
    )

    def add_arguments(self, parser):
        parser.add_argument("pairs", type=Path, help="JSONL with text_a, text_b, label (1 = dup).")
        parser.add_argument("--threshold", type=float,
                            help="Decision threshold (default: CACHE_SIMILARITY_THRESHOLD).")
        parser.add_argument("--limit", type=int, help="Only the first N pairs.")
        parser.add_argument(
            "--cache-dir", type=Path, default=settings.BASE_DIR / "bench" / ".cache",
            help="Folder for cached embeddings (git-ignored); 'none' to disable.",
        )
        parser.add_argument(
            "--judged", metavar="FILE",
            help="Also score the decision against hand-read verdicts on PAIRS (JSONL, "
                 "docs/semantic-cache.md 'Judged evaluation'): judged precision, recall and "
                 "coverage; 'default' is semcache/data/judged_qqp_dev.jsonl (QQP dev pairs).")
        self.add_json_argument(parser)

    def handle(self, *args, **options):
        from semcache.evaluation import cache_evaluate, load_pairs, report_lines
        from semcache.judged import QQP_DEV_VERDICTS, applicable, load_verdicts

        if not options["pairs"].exists():
            raise CommandError(f"No such file: {options['pairs']}")
        pairs = load_pairs(options["pairs"], limit=options["limit"])
        if not pairs:
            raise CommandError("No pairs in the file.")
        verdicts = None
        if options["judged"]:
            path = QQP_DEV_VERDICTS if options["judged"] == "default" else Path(options["judged"])
            if not path.exists():
                raise CommandError(f"No such file: {path}")
            try:
                verdicts = applicable(pairs, load_verdicts(path))
            except ValueError as error:
                raise CommandError(f"--judged: {error}") from error
        cache_dir = None if str(options["cache_dir"]).lower() == "none" else options["cache_dir"]
        result = cache_evaluate(
            pairs, threshold=options["threshold"] or settings.CACHE_SIMILARITY_THRESHOLD,
            cache_dir=cache_dir, progress_file=None if options["json"] else self.stderr,
            verdicts=verdicts)
        if options["json"]:
            self.write_json(result)
            return
        for line in report_lines(result):
            self.stdout.write(line)
