"""The storage contract: an entry, a change event, and the methods every store implements."""

from dataclasses import dataclass, field
from decimal import Decimal

import numpy as np

REQUEST_TTL_SECONDS = 7 * 24 * 3600


class StoreUnavailable(Exception):
    """The store cannot be reached (Redis down): the caller bypasses the cache."""


@dataclass
class Entry:
    """One cached answer."""

    id: str
    namespace: str
    tenant: str
    team_id: int | None
    model_scope: str
    prompt: str
    exact_key: str
    message: dict
    finish_reason: str
    model: str
    usage: dict
    cost: Decimal
    created: float
    expires: float
    hits: int = 0
    last_hit: float | None = None
    vector: np.ndarray | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Event:
    """One change to the store, as the index sees it."""

    cursor: str
    op: str  # "add" | "del" | "reset"
    namespace: str = ""
    entry_id: str = ""
    vector: np.ndarray | None = None
    prompt: str = ""
    expires: float = 0.0


class BaseStore:
    """The storage contract. Every method may raise `StoreUnavailable`."""

    # --- Methods that child classes must implement ----------------------------------------
    def put(self, entry: Entry, *, namespace_info: dict, request_id: str | None = None) -> None:
        """Store an entry (its vector included) with its expiry, and announce it; with
        `request_id` (a team-scoped key, semcache.services.request_key), also remember that
        request as the one that made it (`remember_request`), in the same round trip."""
        raise NotImplementedError("subclasses of BaseStore must provide a put() method")

    def get(self, entry_id: str) -> Entry | None:
        """Return a live entry without its vector, or None."""
        raise NotImplementedError("subclasses of BaseStore must provide a get() method")

    def get_exact(self, exact_key: str) -> Entry | None:
        """Return the live entry stored under an exact key, or None."""
        raise NotImplementedError("subclasses of BaseStore must provide a get_exact() method")

    def delete(self, entry_ids: list[str], *, namespace: str | None = None) -> int:
        """Delete entries and announce it; return how many existed.

        With `namespace`, ids whose entry already expired are still removed from the
        namespace's member set and announced (the expiry job's case).
        """
        raise NotImplementedError("subclasses of BaseStore must provide a delete() method")

    def members(self, namespace: str, *, now: float) -> list[tuple[str, float]]:
        """Return (entry id, expiry) of the namespace's entries still live at `now`."""
        raise NotImplementedError("subclasses of BaseStore must provide a members() method")

    def due(self, namespace: str, *, now: float, older_than: float | None = None) -> list[str]:
        """Return ids of entries expired at `now` (or, with `older_than`, created before it)."""
        raise NotImplementedError("subclasses of BaseStore must provide a due() method")

    def vectors(self, entry_ids: list[str]) -> list[tuple[np.ndarray, str, float] | None]:
        """Return (vector, prompt, expiry) for each id, None where gone."""
        raise NotImplementedError("subclasses of BaseStore must provide a vectors() method")

    def events(self, cursor: str | None, *, limit: int = 1000) -> tuple[str, list[Event]]:
        """Return (new cursor, events after `cursor`); None: the current end, no events."""
        raise NotImplementedError("subclasses of BaseStore must provide an events() method")

    def namespaces(self) -> dict[str, dict]:
        """Return every known namespace with its description."""
        raise NotImplementedError("subclasses of BaseStore must provide a namespaces() method")

    def forget_namespace(self, namespace: str) -> None:
        """Drop an empty namespace from the registry."""
        raise NotImplementedError("subclasses of BaseStore must provide forget_namespace()")

    def record_hit(self, entry_id: str, namespace: str, *, similarity: float | None,
                   saved: Decimal, now: float, request_id: str | None = None) -> None:
        """Count a hit on the entry (and its saving); with `request_id`, remember that the
        request was answered from it (for feedback) in the same call."""
        raise NotImplementedError("subclasses of BaseStore must provide a record_hit() method")

    def record_miss(self, namespace: str) -> None:
        """Count a miss (a store may batch these: `stats` always includes its own)."""
        raise NotImplementedError("subclasses of BaseStore must provide a record_miss() method")

    def stats(self, namespace: str, *, top: int = 5) -> dict:
        """Return {"hits", "misses", "similarity_sum", "semantic_hits", "saved_cost", "top",
        "verified_agree", "verified_disagree"}."""
        raise NotImplementedError("subclasses of BaseStore must provide a stats() method")

    def remember_request(self, request_id: str, entry_id: str) -> None:
        raise NotImplementedError("subclasses of BaseStore must provide remember_request()")

    def entry_for_request(self, request_id: str) -> str | None:
        raise NotImplementedError("subclasses of BaseStore must provide entry_for_request()")

    def threshold_delta(self, namespace: str) -> float:
        raise NotImplementedError("subclasses of BaseStore must provide threshold_delta()")

    def tighten(self, namespace: str, *, step: float, ceiling: float) -> float:
        """Raise the namespace's threshold delta by `step` (at most `ceiling`); return it."""
        raise NotImplementedError("subclasses of BaseStore must provide a tighten() method")

    def record_verification(self, namespace: str, *, agreed: bool) -> dict:
        """Count a verified hit's verdict; return the namespace's counts after it: `agree`,
        `disagree` (all time) and `window_agree`, `window_disagree` (since its threshold last
        moved)."""
        raise NotImplementedError("subclasses of BaseStore must provide record_verification()")

    def shift_threshold(self, namespace: str, *, step: float, low: float, high: float) -> float:
        """Move the namespace's threshold delta by `step` (signed), kept within [low, high], and
        start a new verification window; return the new delta."""
        raise NotImplementedError("subclasses of BaseStore must provide shift_threshold()")

    def get_values(self, keys: list[str]) -> list[bytes | None]:
        """Return the live value stored under each key (None where absent or expired), in one
        round trip: plain values beside the entries, e.g. cached embedding vectors
        (semcache/embeddings.py)."""
        raise NotImplementedError("subclasses of BaseStore must provide get_values()")

    def put_values(self, values: dict[str, bytes], *, ttl_seconds: float) -> None:
        """Store each value under its key for `ttl_seconds`, in one round trip."""
        raise NotImplementedError("subclasses of BaseStore must provide put_values()")

    def clear_values(self) -> int:
        """Delete every value `put_values` stored; return how many (`purge_cache --all`)."""
        raise NotImplementedError("subclasses of BaseStore must provide clear_values()")

    def ping(self) -> None:
        raise NotImplementedError("subclasses of BaseStore must provide a ping() method")

    def flush(self) -> None:
        """Delete everything this store holds (tests and `purge_cache --all`)."""
        raise NotImplementedError("subclasses of BaseStore must provide a flush() method")
