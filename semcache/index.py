"""Vector index of one namespace: exact numpy search when small, HNSW (usearch) when large.

Vectors are unit float32, so similarity is a dot product. A namespace starts as a contiguous numpy
matrix (one matrix-vector product, exact, well under a millisecond up to ~20k entries) and turns
into a usearch HNSW graph at `ANN_MIN_ENTRIES`, where search cost grows with log(n).
Both support incremental add and remove, which is how every process keeps its copy in step with
the store (semcache/registry.py) without ever scanning Redis.
"""

import logging
import threading
from dataclasses import dataclass

import numpy as np

DIMENSIONS = 384
# A namespace switches from exact numpy search to an HNSW graph at this size.
ANN_MIN_ENTRIES = 20_000
# HNSW parameters, measured at 1M real-question entries (bench/semcache_lookup.py,
# docs/semantic-cache.md): M 16 / expansion_add 128 / expansion_search 128 agree with exact
# search on 99.9% of queries (100% of those that could hit) at p99 1.1 ms; expansion_search 64
# drops to 98.8%.
ANN_CONNECTIVITY = 16
ANN_EXPANSION_ADD = 128
ANN_EXPANSION_SEARCH = 128
logger = logging.getLogger(__name__)

try:
    # ONNX Runtime (the embedder's backend) must be loaded before usearch's extension: the other
    # way round, onnxruntime's static initializers crash the process in libstdc++'s codecvt
    # (segfault on `import onnxruntime`; usearch 2.26.6 with onnxruntime 1.28-1.32).
    import onnxruntime  # noqa: F401
except ImportError:  # pragma: no cover - optional: the torch backend needs no ONNX Runtime
    pass
try:
    from usearch.index import Index as _HNSW
except ImportError:  # pragma: no cover - declared in requirements.txt; degrade, don't break
    _HNSW = None


@dataclass(frozen=True)
class Candidate:
    entry_id: str
    similarity: float
    prompt: str


class NamespaceIndex:
    """The vectors of one namespace, with each entry's prompt text and expiry time."""

    def __init__(
        self, *, ann_min_entries: int = ANN_MIN_ENTRIES, connectivity: int = ANN_CONNECTIVITY,
        expansion_add: int = ANN_EXPANSION_ADD, expansion_search: int = ANN_EXPANSION_SEARCH,
        dimensions: int = DIMENSIONS,
    ):
        self.dimensions = dimensions
        self.ann_min_entries = ann_min_entries
        self._ann_params = (connectivity, expansion_add, expansion_search)
        self._lock = threading.RLock()
        # Slot-addressed storage shared by both modes; `_slot` maps entry id -> slot.
        self._slot: dict[str, int] = {}
        self._ids: list[str | None] = []
        self._prompts: list[str] = []
        self._expires = np.zeros(0, dtype=np.float64)
        self._free: list[int] = []
        # numpy mode: dense matrix of live rows (row -> slot), swap-remove on delete.
        self._matrix = np.zeros((0, dimensions), dtype=np.float32)
        self._rows = 0
        self._row_slot: list[int] = []
        self._slot_row: dict[int, int] = {}
        self._ann = None  # usearch.index.Index once large

    def __len__(self) -> int:
        return len(self._slot)

    def __contains__(self, entry_id: str) -> bool:
        return entry_id in self._slot

    @property
    def mode(self) -> str:
        return "hnsw" if self._ann is not None else "exact"

    # --- writes ---------------------------------------------------------------------------
    def add(self, entry_id: str, vector: np.ndarray, prompt: str, expires: float) -> None:
        """Add an entry (or refresh its expiry if present)."""
        self.add_many([entry_id], np.asarray(vector, dtype=np.float32)[None, :], [prompt],
                      [expires])

    def add_many(self, entry_ids, vectors: np.ndarray, prompts, expires, *,
                 threads: int = 1) -> None:
        """Add entries in bulk (ids already present only get their expiry refreshed).

        `threads` > 1 builds the HNSW graph in parallel: faster for a one-off bulk build, but
        the insertion order (and so the graph) then depends on scheduling.
        """
        vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1, self.dimensions)
        with self._lock:
            new = []
            for i, entry_id in enumerate(entry_ids):
                slot = self._slot.get(entry_id)
                if slot is not None:
                    self._expires[slot] = expires[i]
                    continue
                slot = self._free.pop() if self._free else self._grow_slots()
                self._slot[entry_id] = slot
                self._ids[slot] = entry_id
                self._prompts[slot] = prompts[i]
                self._expires[slot] = expires[i]
                new.append((slot, i))
            if not new:
                return
            slots = np.array([s for s, _ in new], dtype=np.uint64)
            rows = vectors[[i for _, i in new]]
            if self._ann is None and len(self._slot) >= self.ann_min_entries and _HNSW:
                self._switch_to_ann(threads)
                self._ann.add(slots, rows, threads=threads)
            elif self._ann is not None:
                self._ann.add(slots, rows, threads=threads)
            else:
                self._append_rows(slots, rows)

    def remove(self, entry_id: str) -> bool:
        """Remove an entry; return whether it was there."""
        with self._lock:
            slot = self._slot.pop(entry_id, None)
            if slot is None:
                return False
            self._ids[slot] = None
            self._prompts[slot] = ""
            self._free.append(slot)
            if self._ann is not None:
                self._ann.remove(slot)
            else:
                row = self._slot_row.pop(slot)
                last = self._rows - 1
                if row != last:
                    moved = self._row_slot[last]
                    self._matrix[row] = self._matrix[last]
                    self._row_slot[row] = moved
                    self._slot_row[moved] = row
                self._row_slot.pop()
                self._rows -= 1
            return True

    def expired(self, now: float) -> list[str]:
        """Return the ids of entries whose expiry time has passed."""
        with self._lock:
            live = np.fromiter(self._slot.values(), dtype=np.int64, count=len(self._slot))
            if not len(live):
                return []
            due = live[self._expires[live] <= now]
            return [self._ids[s] for s in due]

    # --- reads ----------------------------------------------------------------------------
    def search(self, vector: np.ndarray, k: int = 4, *, now: float = 0.0) -> list[Candidate]:
        """Return up to `k` live entries nearest to `vector`, most similar first."""
        vector = np.asarray(vector, dtype=np.float32).reshape(-1)
        with self._lock:
            if not self._slot:
                return []
            if self._ann is None:
                # einsum, not `@`: a BLAS matrix-vector product fans out to BLAS threads,
                # which on a busy 2-core server spin against the request threads (measured:
                # 20k entries, median 38 ms via BLAS vs 1.4 ms single-threaded).
                sims = np.einsum("ij,j->i", self._matrix[: self._rows], vector)
                n = min(k + 2, self._rows)
                top = np.argpartition(-sims, n - 1)[:n] if self._rows > n else np.arange(self._rows)
                top = top[np.argsort(-sims[top])]
                found = [(self._row_slot[r], float(sims[r])) for r in top]
            else:
                matches = self._ann.search(vector, min(k + 2, len(self._slot)))
                found = [
                    (int(key), 1.0 - float(dist))
                    for key, dist in zip(matches.keys, matches.distances, strict=False)
                ]
            result = []
            for slot, sim in found:
                entry_id = self._ids[slot]
                if entry_id is None or self._expires[slot] <= now:
                    continue
                result.append(Candidate(entry_id, sim, self._prompts[slot]))
                if len(result) == k:
                    break
            return result

    # --- persistence ----------------------------------------------------------------------
    def save(self, path: str) -> None:
        """Write the index to `path` (+ `path`.meta.npz), so a large graph is built only once."""
        with self._lock:
            meta = {
                "ids": np.array([i or "" for i in self._ids], dtype=object),
                "prompts": np.array(self._prompts, dtype=object),
                "expires": self._expires[: len(self._ids)],
                "free": np.array(self._free, dtype=np.int64),
                "params": np.array([self.ann_min_entries, *self._ann_params], dtype=np.int64),
            }
            if self._ann is not None:
                self._ann.save(path)
            else:
                meta["matrix"] = self._matrix[: self._rows]
                meta["row_slot"] = np.array(self._row_slot, dtype=np.int64)
            with open(f"{path}.meta.npz", "wb") as handle:
                np.savez(handle, **meta)

    @classmethod
    def restore(cls, path: str, *, dimensions: int = DIMENSIONS) -> "NamespaceIndex":
        """Return the index saved at `path` by `save` (trusted files only: prompts and ids are
        stored as pickled object arrays, which fixed-width string arrays would bloat)."""
        meta = np.load(f"{path}.meta.npz", allow_pickle=True)
        ann_min, connectivity, expansion_add, expansion_search = (int(x) for x in meta["params"])
        index = cls(ann_min_entries=ann_min, connectivity=connectivity,
                    expansion_add=expansion_add, expansion_search=expansion_search,
                    dimensions=dimensions)
        index._ids = [i or None for i in meta["ids"].tolist()]
        index._prompts = meta["prompts"].tolist()
        index._expires = np.array(meta["expires"], dtype=np.float64)
        index._free = meta["free"].tolist()
        index._slot = {entry_id: slot for slot, entry_id in enumerate(index._ids) if entry_id}
        if "matrix" in meta:
            index._append_rows(meta["row_slot"], meta["matrix"])
        else:
            index._ann = _HNSW.restore(path)
            index._ann.expansion_search = expansion_search
        return index

    # --- internals ------------------------------------------------------------------------
    def _grow_slots(self) -> int:
        slot = len(self._ids)
        self._ids.append(None)
        self._prompts.append("")
        if slot >= len(self._expires):
            grown = np.zeros(max(64, 2 * len(self._expires)), dtype=np.float64)
            grown[: len(self._expires)] = self._expires
            self._expires = grown
        return slot

    def _append_rows(self, slots: np.ndarray, rows: np.ndarray) -> None:
        needed = self._rows + len(rows)
        if needed > len(self._matrix):
            grown = np.zeros((max(needed, 2 * len(self._matrix), 64), self.dimensions),
                             dtype=np.float32)
            grown[: self._rows] = self._matrix[: self._rows]
            self._matrix = grown
        self._matrix[self._rows:needed] = rows
        for j, slot in enumerate(slots):
            self._row_slot.append(int(slot))
            self._slot_row[int(slot)] = self._rows + j
        self._rows = needed

    # HNSW inserts run single-threaded (threads=1 below): a multi-threaded build inserts in a
    # scheduling-dependent order, so the graph (and its recall) differed from run to run and
    # between processes; one thread also keeps bulk builds off the request threads' cores.

    def _switch_to_ann(self, threads: int = 1) -> None:
        connectivity, expansion_add, expansion_search = self._ann_params
        ann = _HNSW(
            ndim=self.dimensions, metric="ip", dtype="f32", connectivity=connectivity,
            expansion_add=expansion_add, expansion_search=expansion_search,
        )
        if self._rows:
            ann.add(np.array(self._row_slot, dtype=np.uint64), self._matrix[: self._rows],
                    threads=threads)
        self._ann = ann
        self._matrix = np.zeros((0, self.dimensions), dtype=np.float32)
        self._rows = 0
        self._row_slot = []
        self._slot_row = {}
