"""Helpers shared by the routing tests: a stand-in embedder, a labelled outcomes file."""

import hashlib
import json

import numpy as np


class FakeEmbedder:
    """Deterministic bag-of-words vectors: shared words → similar vectors (no model load)."""

    def embed_sync(self, texts):
        rows = []
        for text in texts:
            vector = np.zeros(64, dtype=np.float32)
            for word in text.lower().split():
                vector[int(hashlib.md5(word.encode()).hexdigest(), 16) % 64] += 1
            rows.append(vector / (np.linalg.norm(vector) or 1))
        return np.stack(rows)


def outcomes_file(tmp_path, n=120):
    """Write n outcomes, half hard (the weak model fails them) and half easy; return the path."""
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n):
        hard = i % 2 == 0
        topic = "integral derivative proof theorem" if hard else "capital city country flag"
        rows.append({"prompt": f"{topic} question {i}", "weak_correct": bool(
            not hard and rng.random() < 0.9), "strong_correct": bool(rng.random() < 0.9)})
    path = tmp_path / "outcomes.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows))
    return path
