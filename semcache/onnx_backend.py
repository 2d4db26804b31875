"""The embedder's ONNX Runtime backend: the exported MiniLM run by ONNX Runtime, pooled in numpy.

Tokenization uses the model's own `tokenizer.json` through `tokenizers` (the Rust tokenizer
sentence-transformers itself runs), truncated at the model's `max_seq_length`; pooling is
sentence-transformers' mean pooling (padding masked out, lengths clamped at 1e-9) followed by L2
normalization (eps 1e-12), so the vectors equal the torch backend's to float precision. The
intermediate layers' hidden states (graph outputs `hidden_state_<i>`) are pooled the same way by
`encode_layers`, from the same run as the sentence embedding.
"""

import json
from pathlib import Path

import numpy as np

from semcache.embedder import mean_pool
from semcache.onnx_export import ensure_exported, intermediate_output

DIMENSIONS = 384


def _max_seq_length(model_dir: Path) -> int:
    config = model_dir / "sentence_bert_config.json"
    if config.exists():
        return int(json.loads(config.read_text()).get("max_seq_length") or 256)
    return 256


MAX_CHUNK = 64
BUCKET_SLACK = 0.5  # a chunk holds texts up to 1.5x (+1 token) as long as its shortest one


def _length_buckets(lengths: list[int]) -> list[list[int]]:
    """Group text positions into chunks of similar token length, shortest first.

    Every text of a chunk is padded to its longest, and padded positions cost as much as real
    ones. Real prompts vary (QQP questions: p50 14 tokens, p90 24, max 70), so one chunk per
    micro-batch spent more on padding than batching saved: at 32 texts per batch, 7.9 ms of CPU
    per text against 4.4 with these buckets (the same vectors; `bench/semcache_embed.py`). Not
    one chunk per length either: each run has a fixed cost, which batching exists to share.
    """
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    chunks, start = [], 0
    while start < len(order):
        limit = lengths[order[start]] * (1 + BUCKET_SLACK) + 1
        end = start + 1
        while end < len(order) and end - start < MAX_CHUNK and lengths[order[end]] <= limit:
            end += 1
        chunks.append(order[start:end])
        start = end
    return chunks


class OnnxBackend:
    """Run the embedding model with ONNX Runtime (the model is exported on first use)."""

    name = "onnx"

    def __init__(self, model_dir: Path, *, threads: int, precision: str = "fp32"):
        import onnxruntime as ort
        from tokenizers import Tokenizer

        path = ensure_exported(model_dir, precision=precision)
        self.precision = precision
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Idle ORT threads spin-wait for work by default: on a 2-core box that burns the core
        # the event loop and the other worker need. Park them instead.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = ort.InferenceSession(str(path), options,
                                             providers=["CPUExecutionProvider"])
        self._inputs = {i.name for i in self._session.get_inputs()}
        # The intermediate layers the export has outputs for (1 … layers − 1), in order.
        self.layers = tuple(sorted(int(o.name.rsplit("_", 1)[1])
                                   for o in self._session.get_outputs()
                                   if o.name != "last_hidden_state"))
        self.max_seq_length = _max_seq_length(model_dir)
        tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        tokenizer.enable_truncation(max_length=self.max_seq_length)
        tokenizer.no_padding()  # padded per length-sorted chunk below, not to the longest text
        self._tokenizer = tokenizer

    def _chunks(self, texts: list[str], outputs: tuple[str, ...] = ("last_hidden_state",)):
        """Yield (positions, [hidden state per name in `outputs`], attention mask) for chunks of
        up to 64 texts of similar length (`_length_buckets`), so that little of a batch's work
        is padding."""
        encodings = self._tokenizer.encode_batch(texts)
        for positions in _length_buckets([len(e.ids) for e in encodings]):
            width = max(len(encodings[i].ids) for i in positions)
            ids = np.zeros((len(positions), width), dtype=np.int64)
            mask = np.zeros_like(ids)
            types = np.zeros_like(ids)
            for row, i in enumerate(positions):
                n = len(encodings[i].ids)
                ids[row, :n] = encodings[i].ids
                mask[row, :n] = 1
                types[row, :n] = encodings[i].type_ids
            feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
            feeds = {name: value for name, value in feeds.items() if name in self._inputs}
            yield positions, self._session.run(list(outputs), feeds), mask

    def encode(self, texts: list[str]) -> np.ndarray:
        """Return `(n, 384)` normalized float32 sentence embeddings."""
        out = np.empty((len(texts), DIMENSIONS), dtype=np.float32)
        for positions, (hidden,), mask in self._chunks(texts):
            out[positions] = mean_pool(hidden, mask)
        return out

    def encode_layers(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Return `(n, 384)` sentence embeddings (as `encode`) and, from the same run, the
        `(n, len(self.layers), 384)` mean-pooled, normalized states of the intermediate layers."""
        vectors = np.empty((len(texts), DIMENSIONS), dtype=np.float32)
        layers = np.empty((len(texts), len(self.layers), DIMENSIONS), dtype=np.float32)
        names = ("last_hidden_state", *(intermediate_output(x) for x in self.layers))
        for positions, (hidden, *states), mask in self._chunks(texts, names):
            vectors[positions] = mean_pool(hidden, mask)
            for column, state in enumerate(states):
                layers[positions, column] = mean_pool(state, mask)
        return vectors, layers
