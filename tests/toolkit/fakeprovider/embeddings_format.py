"""OpenAI Embeddings as the fake answers it: deterministic unit vectors, billed per cl100k token.

A vector depends only on (model, dimensions, input), so a test can compute what the gateway must
return (`fake_vector`). Usage is the inputs' cl100k count (token-id inputs: their length), which
is also what the invoice bills; behaviours apply as for chat (errors, delays, dropped
connections, malformed bodies, missing or lying usage).
"""

import base64
import hashlib
import uuid
from dataclasses import dataclass

import numpy as np

from tests.toolkit.billing import billed_text_tokens
from tests.toolkit.fakeprovider.behaviors import Behavior, reported

DEFAULT_DIMENSIONS = 1536


def fake_vector(model: str, item: str | list[int], dimensions: int | None = None) -> np.ndarray:
    """Return the fake's (unit, float32) embedding of one input."""
    seed = hashlib.sha256(f"{model}\x00{item!r}".encode("utf-8", "surrogatepass")).digest()
    rng = np.random.default_rng(int.from_bytes(seed[:8], "little"))
    vector = rng.standard_normal(dimensions or DEFAULT_DIMENSIONS).astype(np.float32)
    return vector / np.linalg.norm(vector)


def fake_tokens(item: str | list[int]) -> int:
    """Return what the fake bills for one input."""
    return billed_text_tokens(item) if isinstance(item, str) else len(item)


def _inputs(raw: object) -> list:
    if isinstance(raw, str):
        return [raw]
    if isinstance(raw, list) and raw and all(isinstance(t, int) for t in raw):
        return [raw]
    return list(raw) if isinstance(raw, list) else []


@dataclass
class _Bill:
    prompt_tokens: int
    completion_tokens: int = 0


class EmbeddingsFormat:
    """One `/v1/embeddings` request. The server treats it like a non-streamed chat answer:
    `answer` is what it bills, `completion()` the body it sends."""

    path = "/v1/embeddings"

    def __init__(self, body: dict, behavior: Behavior, meter) -> None:
        self.model = str(body.get("model", ""))
        self.id = f"emb-{uuid.uuid4().hex[:24]}"
        self.behavior = behavior
        self.inputs = _inputs(body.get("input"))
        self.dimensions = body.get("dimensions")
        self.base64 = body.get("encoding_format") == "base64"
        self.answer = _Bill(prompt_tokens=sum(fake_tokens(item) for item in self.inputs))

    def error_body(self, status: int, quoted_key: str | None = None) -> dict:
        from tests.toolkit.fakeprovider.openai_format import OpenAIFormat

        return OpenAIFormat.error_body(self, status, quoted_key)

    def completion(self) -> dict:
        if self.behavior.missing_fields:
            return {"object": "list", "model": self.model}
        data = []
        for index, item in enumerate(self.inputs):
            vector = fake_vector(self.model, item, self.dimensions)
            embedding = (base64.b64encode(vector.astype("<f4").tobytes()).decode()
                         if self.base64 else vector.tolist())
            data.append({"object": "embedding", "index": index, "embedding": embedding})
        body = {"object": "list", "data": data, "model": self.model}
        if self.behavior.usage and self.behavior.lie != "missing":
            prompt, _ = reported(self.behavior, self.answer.prompt_tokens, 0)
            body["usage"] = {"prompt_tokens": prompt, "total_tokens": prompt}
        return body
