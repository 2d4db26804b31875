"""Export the embedding model to ONNX now (otherwise the first use or warm-up does it)."""

import time

from django.core.management.base import CommandError

from semcache.management.base import SemcacheCommand


class Command(SemcacheCommand):
    help = ("Export the embedding model to ONNX into SEMCACHE_ONNX_DIR (skipped when this "
            "model's export exists), then check it against sentence-transformers.")

    def add_arguments(self, parser):
        parser.add_argument("--force", action="store_true", help="Export again even if cached.")
        from semcache.onnx_export import PRECISIONS

        parser.add_argument("--precision", choices=PRECISIONS, default=None,
                            help="Weights to export (default SEMCACHE_EMBED_PRECISION); int8 "
                                 "also exports fp32, which it is quantized from.")
        parser.add_argument("--no-check", action="store_true",
                            help="Skip comparing ONNX and torch embeddings.")
        self.add_json_argument(parser)

    def handle(self, *args, **options):
        from semcache.embedder import configured_precision, model_path
        from semcache.onnx_export import ensure_exported, onnx_path

        try:
            precision = options["precision"] or configured_precision()
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        source = model_path()
        existed = onnx_path(source, precision).exists() and not options["force"]
        started = time.perf_counter()
        try:
            path = ensure_exported(source, force=options["force"], precision=precision)
        except Exception as exc:  # noqa: BLE001 - the exporter's errors are many and varied
            raise CommandError(f"ONNX export failed: {exc}") from exc
        result = {"path": str(path), "precision": precision, "exported": not existed,
                  "seconds": round(time.perf_counter() - started, 2),
                  "size_mb": round(path.stat().st_size / 2**20, 1)}
        if not options["no_check"]:
            result.update(_check(source, precision))
        if options["json"]:
            self.write_json(result)
            return
        verb = "Exported" if result["exported"] else "Already exported:"
        self.stdout.write(f"{verb} {result['path']} ({precision}, {result['size_mb']} MB, "
                          f"{result['seconds']} s)")
        if "max_abs_diff" in result:
            self.stdout.write(f"ONNX vs torch on {result['texts']} texts: max |diff| "
                              f"{result['max_abs_diff']:.1e}, min cosine "
                              f"{result['min_cosine']:.7f}")


def _check(source, precision: str) -> dict:
    """Return how far the ONNX embeddings at `precision` are from sentence-transformers' on a
    few texts (float rounding for fp32; ~0.99 in cosine for int8)."""
    import numpy as np

    from semcache.embedder import Embedder

    texts = ["What is the capital of France?", "how do i reset my password",
             "Is 7 a prime number?", "The quick brown fox " * 80]
    onnx = Embedder(source, backend="onnx", precision=precision)
    if onnx.backend != "onnx":
        raise CommandError("ONNX Runtime could not load the export (see the log).")
    a = onnx.embed_sync(texts)
    b = Embedder(source, backend="torch").embed_sync(texts)
    return {"texts": len(texts), "max_abs_diff": float(np.max(np.abs(a - b))),
            "min_cosine": float(np.min(np.sum(a * b, axis=1)))}
