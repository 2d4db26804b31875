"""Where cache entries live: Redis (shared by every gateway process) or in-process memory.

Both stores implement `BaseStore` (base.py); everything above them (index, decision, services) is
the same code. Nothing here scans: entries are found by id, exact key, or a namespace's sorted set
(scored by expiry time), and every change is appended to an event log (a Redis stream) that each
process reads incrementally to keep its vector index in step (semcache/registry.py).

  base.py          the contract: Entry, Event, StoreUnavailable, BaseStore
  memory.py        MemoryStore, the embedded default (one process)
  redis_store.py   RedisStore, shared by every process
  redis_layout.py  the Redis keys, and the codec of entries and stream events
"""

from semcache.store.base import REQUEST_TTL_SECONDS, BaseStore, Entry, Event, StoreUnavailable
from semcache.store.memory import MemoryStore
from semcache.store.redis_store import RedisStore

__all__ = ["REQUEST_TTL_SECONDS", "BaseStore", "Entry", "Event", "MemoryStore", "RedisStore",
           "StoreUnavailable"]
