"""Print cache statistics per namespace: hits, misses, hit rate, similarity, saved cost."""

from django.core.management.base import CommandError

from semcache.management.base import SemcacheCommand


def _precision(row: dict) -> str:
    """Return a row's verified-hit precision as text: share, 95% interval, verdicts."""
    verdicts = row["verified_agree"] + row["verified_disagree"]
    if not verdicts:
        return "verified=none"
    low, high = row["precision_interval"]
    return (f"verified precision={row['precision']:.1%} [{low:.1%}, {high:.1%}] "
            f"({row['verified_agree']}/{verdicts})")


class Command(SemcacheCommand):
    in_process_consequence = "it would report an empty cache while the server serves hits."
    help = ("Show semantic cache statistics per namespace (threshold in force, verified-hit "
            "precision with its 95% interval) and the most-hit entries.")

    def add_arguments(self, parser):
        parser.add_argument("--top", type=int, default=3, help="Most-hit entries per namespace.")
        self.add_json_argument(parser)

    def handle(self, *args, **options):
        from semcache.selectors import cache_totals, namespace_stats
        from semcache.store import StoreUnavailable

        self.require_shared_store()
        try:
            rows = namespace_stats(top=options["top"])
        except StoreUnavailable as exc:
            raise CommandError(f"The cache store is unreachable: {exc}") from exc
        totals = cache_totals(rows)
        if options["json"]:
            self.write_json({"totals": totals, "namespaces": rows})
            return
        self.stdout.write(
            f"{totals['namespaces']} namespaces, {totals['entries']} entries, "
            f"{totals['hits']} hits, {totals['misses']} misses, hit rate {totals['hit_rate']:.1%}, "
            f"saved ${totals['saved_cost']:.6f}, {_precision(totals)}"
        )
        for row in rows:
            sim = f"{row['avg_similarity']:.3f}" if row["avg_similarity"] is not None else "-"
            self.stdout.write(
                f"{row['namespace'][:12]}  {row['tenant']:<12} {row['model_scope']:<20} "
                f"entries={row['entries']:<6} hits={row['hits']:<6} misses={row['misses']:<6} "
                f"hit_rate={row['hit_rate']:.1%} avg_sim={sim} saved=${row['saved_cost']:.6f} "
                f"threshold={row['threshold']:.4f} {_precision(row)}"
            )
            for entry in row["top_entries"]:
                self.stdout.write(f"    {entry['hits']:>5}  {entry['prompt']}")
