"""The gateway's own embedding model as a provider: the semantic cache's all-MiniLM-L6-v2.

No key, no network: `/v1/embeddings` on a `provider: local` profile runs the process's one
embedder (semcache/embedder.py, loaded once per process) off the event loop. Its vectors are
exactly the semantic cache's (384 dimensions, L2-normalized); token-id inputs are cl100k ids (what
OpenAI's clients send), decoded to text first. The model reads the first 256 word pieces of an
input, as everywhere in the gateway.
"""

import asyncio

from llmops.providers.base import Embeddings, ProviderAdapter, ProviderCall, Usage
from llmops.providers.errors import ProviderBadRequest
from routing.tokens import decode_token_ids, tokenizer_count

# Texts per encode: the embedder's lock is shared with the cache's batching thread, which
# should not wait behind one huge request.
CHUNK = 64


def input_texts(inputs: list) -> tuple[list[str], int]:
    """Return the texts of `inputs` (strings, or cl100k token-id lists decoded) and their token
    count (a token list counts its length; a string its cl100k count, its UTF-8 bytes without a
    tokenizer)."""
    texts, tokens = [], 0
    for item in inputs:
        if isinstance(item, str):
            texts.append(item)
            counted = tokenizer_count(item)
            tokens += len(item.encode("utf-8", "surrogatepass")) if counted is None else counted
        else:
            try:
                texts.append(decode_token_ids(item))
            except ValueError as exc:
                raise ProviderBadRequest(str(exc)) from None
            tokens += len(item)
    return texts, tokens


class LocalEmbeddingAdapter(ProviderAdapter):
    """Embeddings from the in-process MiniLM; it answers no chat."""

    provider = "local"

    def stream(self, call: ProviderCall):
        raise ProviderBadRequest("the local embedding model answers no chat")

    async def embed(self, call: ProviderCall) -> Embeddings:
        from semcache.embedder import get_embedder

        embedder = get_embedder()
        dimensions = call.params.get("dimensions")
        if dimensions is not None and dimensions != embedder.dimensions:
            raise ProviderBadRequest(
                f"{call.upstream_model} makes {embedder.dimensions}-dimensional vectors only")
        texts, tokens = input_texts(call.params["input"])
        vectors = []
        for start in range(0, len(texts), CHUNK):
            vectors.extend(await asyncio.to_thread(embedder.embed_sync,
                                                   texts[start:start + CHUNK]))
        return Embeddings(vectors=vectors, usage=Usage(prompt_tokens=tokens))
