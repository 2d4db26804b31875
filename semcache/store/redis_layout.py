"""How the Redis store lays out entries and events: the keys, and the codec of their fields.

Redis layout (prefix `SEMCACHE_KEY_PREFIX`, default "semcache"):
  {p}:e:{id}       hash   the entry (prompt, vector, answer, model, usage, cost, hits, ...) + TTL
  {p}:x:{exact}    string entry id of an exact key, same TTL
  {p}:n:{ns}       zset   entry id -> expiry time (epoch seconds): the namespace's members
  {p}:ns           hash   namespace -> JSON description (tenant, team, model scope)
  {p}:events       stream add/del events: op, ns, id (+ vector, prompt, expiry for add)
  {p}:r:{team}:{request}  string entry id a team's request was answered from / stored as
                          (for feedback; request ids are unique per team only)
  {p}:s:{ns}       hash   stats: hits, misses, similarity sum, saved cost (a process adds its
                          misses with its next write, at most SEMCACHE_SYNC_INTERVAL_MS later)
  {p}:top:{ns}     zset   entry id -> hits (most-hit entries)
  {p}:thr:{ns}     string threshold increase learned from feedback
  {p}:v:{key}      string a plain value with its TTL (`put_values`): cached embedding vectors
"""

import json
from decimal import Decimal

import numpy as np

from semcache.store.base import Entry, Event

# What `RedisStore.get` reads of an entry's hash: everything but its vector.
ENTRY_FIELDS = ("ns", "tenant", "team", "model_scope", "prompt", "exact", "message",
                "finish_reason", "model", "usage", "cost", "created", "expires", "hits", "last_hit")


def entry_fields(entry: Entry) -> dict:
    """Return the hash fields of a new entry (its vector as float32 bytes)."""
    return {
        "ns": entry.namespace, "tenant": entry.tenant,
        "team": "" if entry.team_id is None else str(entry.team_id),
        "model_scope": entry.model_scope, "prompt": entry.prompt, "exact": entry.exact_key,
        "message": json.dumps(entry.message), "finish_reason": entry.finish_reason,
        "model": entry.model, "usage": json.dumps(entry.usage), "cost": str(entry.cost),
        "created": repr(entry.created), "expires": repr(entry.expires), "hits": "0",
        "last_hit": "", "vec": np.asarray(entry.vector, dtype=np.float32).tobytes(),
    }


def entry_from_fields(entry_id: str, fields: dict) -> Entry:
    """Return the entry of a hash read back (`ENTRY_FIELDS`, and "vec" when read)."""
    def s(key):
        value = fields.get(key, b"")
        return value.decode() if isinstance(value, bytes) else value

    vec = fields.get("vec")
    return Entry(
        id=entry_id, namespace=s("ns"), tenant=s("tenant"),
        team_id=int(s("team")) if s("team") else None, model_scope=s("model_scope"),
        prompt=s("prompt"), exact_key=s("exact"), message=json.loads(s("message") or "{}"),
        finish_reason=s("finish_reason"), model=s("model"), usage=json.loads(s("usage") or "{}"),
        cost=Decimal(s("cost") or "0"), created=float(s("created") or 0),
        expires=float(s("expires") or 0), hits=int(s("hits") or 0),
        last_hit=float(s("last_hit")) if s("last_hit") else None,
        vector=np.frombuffer(vec, dtype=np.float32) if vec else None,
    )


def _event(event_id: bytes, fields: dict) -> Event:
    op = fields[b"op"].decode()
    if op == "add":
        return Event(cursor=event_id.decode(), op="add", namespace=fields[b"ns"].decode(),
                     entry_id=fields[b"id"].decode(),
                     vector=np.frombuffer(fields[b"vec"], dtype=np.float32),
                     prompt=fields[b"prompt"].decode(), expires=float(fields[b"exp"]))
    return Event(cursor=event_id.decode(), op=op, namespace=fields[b"ns"].decode(),
                 entry_id=fields[b"id"].decode())


def events_after(cursor: str | None, replies: list) -> tuple[str, list[Event]]:
    """Return (new cursor, events) from the replies of XREAD after `cursor` (absent without one)
    and XINFO STREAM of the event stream.

    The cursor is "<last stream id read>@<entries added to the stream up to it>": when the
    stream holds fewer entries than were added since, some were trimmed unread -> a "reset".
    """
    info = replies[-1] if isinstance(replies[-1], dict) else {}
    added = int(info.get("entries-added", 0))
    last_id = info.get("last-generated-id", b"0-0")
    last_id = last_id.decode() if isinstance(last_id, bytes) else str(last_id or "0-0")
    if cursor is None:
        return f"{last_id}@{added}", []
    read_added = int(cursor.partition("@")[2] or 0)
    result = replies[0]
    rows = [] if isinstance(result, Exception) or not result else result[0][1]
    if added < read_added or int(info.get("length", 0)) < added - read_added:
        return f"{last_id}@{added}", [Event(cursor=f"{last_id}@{added}", op="reset")]
    if not rows:
        return cursor, []
    return (f"{rows[-1][0].decode()}@{read_added + len(rows)}",
            [_event(event_id, fields) for event_id, fields in rows])
