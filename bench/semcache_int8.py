"""What dynamic int8 quantization of the embedder would cost and buy (issues #4 and #7).

    DEBUG=1 .venv/bin/python bench/semcache_int8.py [PAIRS.jsonl] [--pairs 8000] [--speed-texts 256]

Quantizes the gateway's ONNX export (onnxruntime.quantization.quantize_dynamic, int8 weights,
per-channel; the file goes to bench/.cache/) and compares it with the fp32 export the gateway
runs, on the QQP questions of the first `--pairs` pairs:
- drift: cosine between each text's fp32 and int8 embedding, and how much each pair's cosine
  moves (what every threshold was fitted on);
- eval_cache's protocol on those pairs (lexical decision, no token pass) for both, at the
  configured threshold and the plain thresholds;
- speed: one text at a time, and per text in batches of 32, one intra-op thread each.
Nothing in the gateway changes: this measures a candidate.
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


def quantized_copy(fp32: Path, cache: Path) -> Path:
    """Return the int8 copy of the fp32 export (made once, cached beside the other bench data)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    target = cache / f"{fp32.parent.name}-{fp32.stem}-int8.onnx"
    if not target.exists():
        cache.mkdir(parents=True, exist_ok=True)
        quantize_dynamic(str(fp32), str(target), weight_type=QuantType.QInt8, per_channel=True)
    return target


def backend_on(path: Path, model_dir: Path):
    """Return an OnnxBackend (the gateway's tokenizer, chunking, pooling) running `path`."""
    import onnxruntime as ort

    from semcache.onnx_backend import OnnxBackend

    backend = OnnxBackend(model_dir, threads=1)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    backend._session = ort.InferenceSession(str(path), options,
                                            providers=["CPUExecutionProvider"])
    return backend


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
    from semcache.onnx_export import ensure_exported

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", nargs="?",
                        default=str(ROOT.parent / "shared/data/qqp_pairs_dev.jsonl"))
    parser.add_argument("--pairs", type=int, default=8000)
    parser.add_argument("--speed-texts", type=int, default=256)
    args = parser.parse_args()

    model_dir = model_path()
    fp32_path = ensure_exported(model_dir)
    int8_path = quantized_copy(fp32_path, ROOT / "bench" / ".cache")
    backends = {"fp32": backend_on(fp32_path, model_dir),
                "int8": backend_on(int8_path, model_dir)}
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
        print(f"{name}: lexical decision at {threshold}: hit rate {result['hit_rate']:.3f} "
              f"precision {result['precision']:.3f}; plain {cells}")

    speed_texts = texts[: args.speed_texts]
    for name, backend in backends.items():
        alone, batched = timings(backend, speed_texts)
        print(f"{name}: one text {alone:.2f} ms (median), {batched:.2f} ms per text in "
              f"batches of 32 (1 thread)")


if __name__ == "__main__":
    main()
