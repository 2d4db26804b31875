"""The Redis store's codec: entries round-trip through their hash, stream replies become events."""

from decimal import Decimal

import numpy as np

from semcache.store import Entry
from semcache.store.redis_layout import ENTRY_FIELDS, entry_fields, entry_from_fields, events_after


def _entry(**overrides) -> Entry:
    fields = dict(id="e1", namespace="ns", tenant="team:1", team_id=1, model_scope="auto",
                  prompt="what is the capital of france", exact_key="x1",
                  message={"role": "assistant", "content": "Paris."}, finish_reason="stop",
                  model="m", usage={"prompt_tokens": 12}, cost=Decimal("0.0042"), created=1.5,
                  expires=99.25, vector=np.arange(4, dtype=np.float32))
    return Entry(**{**fields, **overrides})


def _bytes(fields: dict) -> dict:
    return {k: v if isinstance(v, bytes) else str(v).encode() for k, v in fields.items()}


class TestEntryCodec:
    def test_an_entry_round_trips(self):
        entry = _entry()
        back = entry_from_fields("e1", _bytes(entry_fields(entry)))
        assert back.vector.tolist() == [0.0, 1.0, 2.0, 3.0]
        assert {**back.__dict__, "vector": None} == {**entry.__dict__, "vector": None}

    def test_without_its_vector_and_team(self):
        fields = _bytes(entry_fields(_entry(team_id=None)))
        back = entry_from_fields("e1", {k: fields[k] for k in ENTRY_FIELDS})
        assert back.vector is None and back.team_id is None and back.hits == 0


def _info(*, added: int, length: int, last: bytes = b"5-0") -> dict:
    return {"entries-added": added, "length": length, "last-generated-id": last}


class TestEventsAfter:
    def test_without_a_cursor_the_current_end_and_no_events(self):
        assert events_after(None, [_info(added=7, length=7)]) == ("5-0@7", [])

    def test_rows_after_the_cursor_become_events_and_advance_it(self):
        rows = [(b"4-0", {b"op": b"add", b"ns": b"ns", b"id": b"e1",
                          b"vec": np.ones(2, dtype=np.float32).tobytes(), b"prompt": b"p",
                          b"exp": b"9.5"}),
                (b"5-0", {b"op": b"del", b"ns": b"ns", b"id": b"e0"})]
        cursor, events = events_after("3-0@5", [[[b"semcache:events", rows]],
                                                _info(added=7, length=7)])
        assert cursor == "5-0@7"
        assert [(e.op, e.entry_id, e.cursor) for e in events] == [("add", "e1", "4-0"),
                                                                   ("del", "e0", "5-0")]
        assert events[0].vector.tolist() == [1.0, 1.0] and events[0].expires == 9.5

    def test_nothing_new_keeps_the_cursor(self):
        assert events_after("5-0@7", [[], _info(added=7, length=7)]) == ("5-0@7", [])

    def test_entries_trimmed_unread_mean_a_reset(self):
        # 10 added since the cursor's 5, but the capped stream holds only 4 of them.
        cursor, events = events_after("3-0@5", [[], _info(added=15, length=4, last=b"9-0")])
        assert cursor == "9-0@15" and [e.op for e in events] == ["reset"]

    def test_a_stream_that_was_recreated_means_a_reset(self):
        cursor, events = events_after("3-0@5", [[], _info(added=2, length=2, last=b"1-0")])
        assert cursor == "1-0@2" and [e.op for e in events] == ["reset"]
