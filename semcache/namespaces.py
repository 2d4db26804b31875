"""Cache scope of a request: its namespace, its exact key and the text that gets embedded.

A namespace is (tenant, model scope, answer-changing parameters, system prompt, earlier turns of
the conversation, the embedder's precision): an entry is only visible inside its own namespace
(docs/architecture.md, invariant 3), and a vector is only compared with vectors of its own
embedder (int8 cosines run lower than fp32 ones: a mixed index would serve at the wrong
threshold). The tenant is the team, or "shared" for teams that opted in to cross-tenant sharing.
Only the last user message is compared semantically; everything before it must match exactly,
so a multi-turn conversation is keyed on the whole conversation.
"""

import hashlib
import json
import unicodedata
from dataclasses import dataclass

SHARED_TENANT = "shared"
_VERSION = 1


def normalize_text(text: str) -> str:
    """Return `text` NFKC-normalized with runs of whitespace collapsed and the ends stripped."""
    return " ".join(unicodedata.normalize("NFKC", text).split())


def content_text(content) -> tuple[str, bool]:
    """Return (text of a message content, whether it is text only)."""
    if content is None:
        return "", True
    if isinstance(content, str):
        return normalize_text(content), True
    if isinstance(content, list):
        texts, text_only = [], True
        for part in content:
            if isinstance(part, dict) and part.get("type") == "text":
                texts.append(normalize_text(str(part.get("text", ""))))
            else:
                text_only = False
        return " ".join(t for t in texts if t), text_only
    return normalize_text(str(content)), False


def _canonical_message(message: dict) -> dict:
    """Return the parts of a message that change the answer, normalized."""
    canonical = {"role": message.get("role")}
    content = message.get("content")
    if isinstance(content, str):
        canonical["content"] = normalize_text(content)
    elif content is not None:
        canonical["content"] = content
    for key in ("name", "tool_calls", "tool_call_id", "function_call"):
        if message.get(key) is not None:
            canonical[key] = message[key]
    return canonical


def bucket_temperature(value) -> str:
    """Return the temperature bucket: one decimal place (0.7 and 0.71 answer alike)."""
    try:
        return f"{round(float(value), 1):.1f}"
    except (TypeError, ValueError):
        return str(value)


def _digest(payload) -> str:
    data = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"),
                      default=str)
    return hashlib.sha256(data.encode()).hexdigest()


@dataclass(frozen=True)
class Scope:
    """Where a request's answer may be found and stored."""

    namespace: str        # opaque id of the namespace (hex digest)
    tenant: str           # "team:<id>" or "shared"
    team_id: int | None
    model_scope: str      # the requested model, or "auto"
    exact_key: str        # hash of namespace + last message: the exact fast path
    query_text: str       # what gets embedded ("" when the request is exact-only)
    semantic: bool        # False when the last message is not plain user text

    @property
    def label(self) -> str:
        return f"{self.tenant}/{self.model_scope}"


def build_scope(
    *, team_id: int | None, messages: list[dict], requested_model: str, answer_params: dict,
    shared: bool = False, vectors: str | None = None,
) -> Scope:
    """Return the cache scope of a chat request; `vectors` names the embedder whose vectors the
    namespace holds (default: this process's, `semcache.embedder.vector_space`)."""
    if vectors is None:
        from semcache.embedder import vector_space  # numpy and the tokenizer: not at import

        vectors = vector_space()
    tenant = SHARED_TENANT if shared else f"team:{team_id}"
    model_scope = (requested_model or "").strip().lower() or "auto"
    params = dict(answer_params)
    if "temperature" in params:
        params["temperature"] = bucket_temperature(params["temperature"])
    canonical = [_canonical_message(m) for m in messages]
    history, last = canonical[:-1], (canonical[-1] if canonical else {})
    identity = {"v": _VERSION, "tenant": tenant, "model": model_scope, "params": params,
                "history": history}
    if vectors != "fp32":  # fp32 namespaces keep the digests they had before int8 existed
        identity["vectors"] = vectors
    namespace = _digest(identity)[:32]
    exact_key = _digest({"ns": namespace, "last": last})[:40]
    query_text, text_only = content_text(messages[-1].get("content")) if messages else ("", False)
    semantic = bool(
        messages and messages[-1].get("role") == "user" and text_only and query_text
    )
    return Scope(
        namespace=namespace, tenant=tenant, team_id=team_id, model_scope=model_scope,
        exact_key=exact_key, query_text=query_text if semantic else "", semantic=semantic,
    )
