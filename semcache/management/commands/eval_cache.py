"""Evaluate the cache decision on labelled question pairs (hit rate, precision, false hits)."""

from pathlib import Path

from django.conf import settings
from django.core.management.base import CommandError
from tqdm import tqdm

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
        self.add_json_argument(parser)

    def handle(self, *args, **options):
        from semcache.embedder import get_embedder, model_path, precision_tag
        from semcache.evaluation import cached_embed, evaluate, load_pairs

        if not options["pairs"].exists():
            raise CommandError(f"No such file: {options['pairs']}")
        pairs = load_pairs(options["pairs"], limit=options["limit"])
        if not pairs:
            raise CommandError("No pairs in the file.")
        cache_dir = None if str(options["cache_dir"]).lower() == "none" else options["cache_dir"]
        threshold = options["threshold"] or settings.CACHE_SIMILARITY_THRESHOLD
        quiet = options["json"]
        embedder = get_embedder()

        def embed(texts):
            def run(chunk_texts):
                return embedder.embed_sync(chunk_texts)

            def with_bar(all_texts):
                import numpy as np

                out = []
                with tqdm(total=len(all_texts), unit="text", desc="embedding", disable=quiet,
                          file=self.stderr) as bar:
                    for start in range(0, len(all_texts), 1024):
                        out.append(run(all_texts[start:start + 1024]))
                        bar.update(len(out[-1]))
                return np.concatenate(out) if out else np.zeros((0, 384), np.float32)

            # The cache is per model and precision: int8 vectors are not fp32 ones.
            return cached_embed(with_bar, texts, cache_dir,
                                tag=precision_tag(str(model_path())))

        bar = tqdm(total=len(pairs), unit="query", desc="querying", disable=quiet,
                   file=self.stderr)
        last = [0]

        def progress(i):
            bar.update(i - last[0])
            last[0] = i

        result = evaluate(pairs, embed=embed, threshold=threshold, progress=progress)
        bar.update(len(pairs) - last[0])
        bar.close()
        if options["json"]:
            self.write_json(result)
            return
        w = self.stdout.write
        w(f"{result['queries']} queries ({result['duplicate_queries']} duplicates), "
          f"{result['stored_entries']} entries stored ({result['index_mode']} index)")
        w(f"decision (cosine >= {threshold} after the hard guards): hit rate "
          f"{result['hit_rate']:.3f}  precision {result['precision']:.3f}  "
          f"false hits/1k {result['false_hits_per_1k']:.1f}")
        w(f"search + decision per lookup: p50 {result['lookup_ms_p50']:.2f} ms, p99 "
          f"{result['lookup_ms_p99']:.2f} ms; {result['gray_zone_lookups']} lookups with a "
          f"candidate at or above the threshold: p50 {result['gray_zone_ms_p50']:.2f} ms, p99 "
          f"{result['gray_zone_ms_p99']:.2f} ms")
        w("plain cosine thresholds:")
        w("  threshold  hit_rate  precision  false_hits/1k")
        for row in result["thresholds"]:
            w(f"  {row['threshold']:.2f}       {row['hit_rate']:.3f}     {row['precision']:.3f}"
              f"      {row['false_hits_per_1k']:.1f}")
