"""What dynamic int8 quantization of the embedder costs and buys.

    DEBUG=1 .venv/bin/python bench/semcache_int8.py [PAIRS.jsonl] [--pairs 8000] [--speed-texts 256]

Runs the gateway's int8 embedder (SEMCACHE_EMBED_PRECISION=int8: semcache.onnx_export.quantize,
int8 weights per channel, next to the fp32 export) beside the fp32 one, the default, on the QQP
questions of the first `--pairs` pairs:
- drift: cosine between each text's fp32 and int8 embedding, and how much each pair's cosine
  moves (what every threshold was fitted on);
- eval_cache's protocol on those pairs (the guards decision) for both, at the
  configured threshold and the plain thresholds;
- speed: one text at a time, and per text in batches of 32, one intra-op thread each.
Results and what switching takes: docs/semantic-cache.md, "int8 embedder".
"""

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "llmops.settings.base")
os.environ.setdefault("DEBUG", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def backend_at(model_dir: Path, precision: str):
    """Return the gateway's OnnxBackend at `precision` (exported or quantized on first use), on
    one intra-op thread so both precisions are timed alike."""
    from semcache.onnx_backend import OnnxBackend

    return OnnxBackend(model_dir, threads=1, precision=precision)


def timings(backend, texts: list[str]) -> tuple[float, float]:
    """Return (ms for one text, median over texts; ms per text in batches of 32)."""
    import numpy as np

    backend.encode(texts[:8])  # warm
    alone = []
    for text in texts:
        t0 = time.perf_counter()
        backend.encode([text])
        alone.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    for start in range(0, len(texts), 32):
        backend.encode(texts[start:start + 32])
    batched = (time.perf_counter() - t0) / len(texts)
    return float(np.median(alone)) * 1000, batched * 1000


def main() -> None:
    import django

    django.setup()
    import numpy as np
    from django.conf import settings

    from semcache.embedder import model_path
    from semcache.evaluation import evaluate, load_pairs
    from semcache.onnx_export import onnx_path

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", nargs="?",
                        default=str(ROOT.parent / "shared/data/qqp_pairs_dev.jsonl"))
    parser.add_argument("--pairs", type=int, default=8000)
    parser.add_argument("--speed-texts", type=int, default=256)
    args = parser.parse_args()

    model_dir = model_path()
    backends = {name: backend_at(model_dir, name) for name in ("fp32", "int8")}
    fp32_path, int8_path = onnx_path(model_dir, "fp32"), onnx_path(model_dir, "int8")
    print(f"fp32 {fp32_path.stat().st_size / 1e6:.1f} MB, "
          f"int8 {int8_path.stat().st_size / 1e6:.1f} MB")

    pairs = load_pairs(Path(args.file), limit=args.pairs)
    texts = list(dict.fromkeys([p.text_a for p in pairs] + [p.text_b for p in pairs]))
    vectors = {name: b.encode(texts) for name, b in backends.items()}
    same = np.sum(vectors["fp32"] * vectors["int8"], axis=1)
    row = {t: i for i, t in enumerate(texts)}
    a = [row[p.text_a] for p in pairs]
    b = [row[p.text_b] for p in pairs]
    pair_cos = {n: np.sum(v[a] * v[b], axis=1) for n, v in vectors.items()}
    shift = pair_cos["int8"] - pair_cos["fp32"]
    high = pair_cos["fp32"] >= 0.85
    print(f"{len(texts)} texts: cosine(fp32, int8) mean {same.mean():.4f}, "
          f"p1 {np.percentile(same, 1):.4f}, min {same.min():.4f}")
    print(f"pair cosine shift (int8 - fp32): mean {shift.mean():+.4f}, |shift| p50 "
          f"{np.median(np.abs(shift)):.4f} p99 {np.percentile(np.abs(shift), 99):.4f}; "
          f"for pairs at fp32 cosine ≥ 0.85: |shift| p50 {np.median(np.abs(shift[high])):.4f} "
          f"p99 {np.percentile(np.abs(shift[high]), 99):.4f}")

    threshold = settings.CACHE_SIMILARITY_THRESHOLD
    for name in backends:
        lookup = dict(zip(texts, vectors[name], strict=True))
        result = evaluate(pairs, embed=lambda ts, lookup=lookup: np.stack([lookup[t] for t in ts]),
                          threshold=threshold)
        plain = {round(t["threshold"], 2): t for t in result["thresholds"]}
        cells = "  ".join(f"{t}: {plain[t]['hit_rate']:.3f}@{plain[t]['precision']:.3f}"
                          for t in (0.93, 0.95, 0.96, 0.97) if t in plain)
        print(f"{name}: guards decision at {threshold}: hit rate {result['hit_rate']:.3f} "
              f"precision {result['precision']:.3f}; plain {cells}")

    speed_texts = texts[: args.speed_texts]
    for name, backend in backends.items():
        alone, batched = timings(backend, speed_texts)
        print(f"{name}: one text {alone:.2f} ms (median), {batched:.2f} ms per text in "
              f"batches of 32 (1 thread)")


if __name__ == "__main__":
    main()
