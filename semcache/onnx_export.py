"""Export the embedding model's transformer to ONNX (fp32), once per model, into a cache dir.

The exported graph maps (input_ids, attention_mask, token_type_ids) to the last hidden state and,
as further outputs `hidden_state_<i>`, the hidden states of the intermediate layers (1 to
layers − 1), which the same forward pass computes anyway (routing pools them: docs/routing.md);
pooling and normalization stay in numpy (semcache/onnx_backend.py), so the graph serves sentence
embeddings, pooled intermediate layers and the raw token vectors. Weights stay fp32 by default;
`SEMCACHE_EMBED_PRECISION=int8` adds a dynamically quantized copy (`model-int8.onnx`, int8
weights per channel, made from the fp32 file): ~2.2x faster on this CPU, but it moves
embeddings (mean cosine to fp32 0.994, a pair's cosine by 0.008 at the median), which shifts
every similarity threshold a little (docs/semantic-cache.md, "int8 embedder").

The file lands in `SEMCACHE_ONNX_DIR/<key>/model.onnx`, where the key hashes the model's files
and the export recipe, so a changed model or recipe exports again and nothing ever re-exports
needlessly: processes (gateway workers, test sessions) share one export, serialized by a file
lock and published by an atomic rename.
"""

import fcntl
import hashlib
import logging
import os
import tempfile
import warnings
from pathlib import Path

from django.conf import settings

logger = logging.getLogger(__name__)

# Bump when the export below changes in a way that changes the file.
RECIPE = "minilm-last-and-intermediate-hidden-fp32-opset17-v2"
OPSET = 17
_HASHED = ("config.json", "model.safetensors", "pytorch_model.bin", "tokenizer.json")


def intermediate_output(layer: int) -> str:
    """Return the graph output name of intermediate layer `layer`'s hidden state."""
    return f"hidden_state_{layer}"


def cache_root() -> Path:
    """Return the directory exports are cached in (SEMCACHE_ONNX_DIR, else ~/.cache/llmops)."""
    configured = getattr(settings, "SEMCACHE_ONNX_DIR", "") or ""
    if configured:
        return Path(configured).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "llmops" / "onnx"


def export_key(model_dir: Path) -> str:
    """Return a key naming this model's export: a hash of its files and the recipe."""
    digest = hashlib.sha256(RECIPE.encode())
    for name in _HASHED:
        path = model_dir / name
        if path.exists():
            digest.update(name.encode())
            with path.open("rb") as handle:
                digest.update(hashlib.file_digest(handle, "sha256").digest())
    return digest.hexdigest()[:16]


PRECISIONS = ("fp32", "int8")


def checked_precision(precision: str) -> str:
    """Return `precision` if it is one of PRECISIONS; raise ValueError otherwise (a typo in
    SEMCACHE_EMBED_PRECISION must fail loudly, not fall back quietly)."""
    if precision not in PRECISIONS:
        raise ValueError(f"SEMCACHE_EMBED_PRECISION must be fp32 or int8, not {precision!r}")
    return precision


def onnx_path(model_dir: Path, precision: str = "fp32") -> Path:
    """Return where this model's export at `precision` lives (whether or not it exists yet)."""
    name = "model.onnx" if checked_precision(precision) == "fp32" else f"model-{precision}.onnx"
    return cache_root() / export_key(model_dir) / name


def ensure_exported(model_dir: Path, *, force: bool = False, precision: str = "fp32") -> Path:
    """Return the path of the model's ONNX export at `precision`, exporting (and, for int8,
    quantizing the fp32 export) first if needed."""
    target = onnx_path(model_dir, precision)
    if target.exists() and not force:
        return target
    if precision == "fp32":
        return _publish(target, lambda tmp: export(model_dir, tmp), force=force)
    source = ensure_exported(model_dir, force=force)
    return _publish(target, lambda tmp: quantize(source, tmp), force=force)


def _publish(target: Path, build, *, force: bool) -> Path:
    """Build `target` with `build(tmp_path)` unless it exists, once across processes: behind a
    file lock, into a temporary file that is renamed into place when complete."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with (target.parent / ".lock").open("w") as lock:
        # Another process may be exporting right now: wait for it, then reuse its file.
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if target.exists() and not force:
                return target
            fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".onnx.tmp")
            os.close(fd)
            try:
                build(Path(tmp))
                os.chmod(tmp, 0o644)  # mkstemp makes it owner-only; workers may run as others
                os.replace(tmp, target)
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return target


def quantize(source: Path, destination: Path) -> None:
    """Write a dynamically quantized copy of the fp32 export `source` to `destination`: int8
    weights (per output channel) for the MatMuls with constant weights, activations quantized
    on the fly; LayerNorm, softmax and the attention products stay fp32."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    logger.info("semcache: quantizing %s to int8 at %s", source, destination)
    quantize_dynamic(str(source), str(destination), weight_type=QuantType.QInt8,
                     per_channel=True)


def export(model_dir: Path, destination: Path) -> None:
    """Export the transformer in `model_dir` to an ONNX file at `destination`."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import torch
    from transformers import AutoModel

    logger.info("semcache: exporting %s to ONNX at %s", model_dir, destination)
    # Eager attention traces to plain MatMul/Softmax ops that every ONNX Runtime runs.
    model = AutoModel.from_pretrained(str(model_dir), attn_implementation="eager").eval()

    class HiddenStates(torch.nn.Module):
        """The encoder with positional inputs and a flat tuple of outputs, as the exporter
        wants it: the last hidden state, then the intermediate layers' (1 … layers − 1)."""

        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask, token_type_ids):
            out = self.inner(input_ids=input_ids, attention_mask=attention_mask,
                             token_type_ids=token_type_ids, output_hidden_states=True)
            return (out.last_hidden_state, *out.hidden_states[1:-1])

    wrapper = HiddenStates(model)
    outputs = ["last_hidden_state"] + [
        intermediate_output(layer) for layer in range(1, model.config.num_hidden_layers)]
    # A padded example: traced with an all-ones mask, the exporter would keep the masking
    # code's "no padding" shortcut and batches of unequal lengths would come out wrong.
    ids = torch.tensor([[101, 7592, 2088, 102, 0, 0, 0, 0],
                        [101, 1996, 4937, 2938, 2006, 1996, 13523, 102]])
    mask = (ids != 0).long()
    example = (ids, mask, torch.zeros_like(ids))
    dynamic = {0: "batch", 1: "tokens"}
    with torch.inference_mode(), warnings.catch_warnings():
        # The tracer warns about Python-level branches on shapes in transformers' masking code;
        # the equivalence test (varied lengths, padding, truncation) is what proves the graph.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            wrapper, example, str(destination),
            input_names=["input_ids", "attention_mask", "token_type_ids"],
            output_names=outputs,
            dynamic_axes={
                "input_ids": dynamic, "attention_mask": dynamic, "token_type_ids": dynamic,
                **{name: dynamic for name in outputs},
            },
            opset_version=OPSET, do_constant_folding=True, dynamo=False,
        )
