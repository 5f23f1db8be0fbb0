"""The store's event outbox: order, peeking, deleting, trimming, and a sequence that never
goes back (across deletes, trims and a reopen)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cdnops.errors import StoreError
from cdnops.store.db import Store


def events(*names: str) -> list[tuple[float, str, bytes]]:
    """(ts, topic, payload) for each name."""
    return [(float(i), f"t/{n}", b'{"n":"%s"}' % n.encode()) for i, n in enumerate(names)]


def test_append_returns_increasing_seqs_and_peek_is_oldest_first(tmp_path: Path) -> None:
    with Store(tmp_path / "state.db") as store:
        assert store.outbox_next_seq() == 1
        assert store.outbox_append(events("a", "b", "c")) == [1, 2, 3]
        assert store.outbox_append(events("d")) == [4]
        rows = store.outbox_peek(10)
        assert [(r.seq, r.topic, r.payload) for r in rows] == [
            (1, "t/a", b'{"n":"a"}'),
            (2, "t/b", b'{"n":"b"}'),
            (3, "t/c", b'{"n":"c"}'),
            (4, "t/d", b'{"n":"d"}'),
        ]
        assert [r.seq for r in store.outbox_peek(2)] == [1, 2]
        assert [r.seq for r in store.outbox_peek(2, after=2)] == [3, 4]
        assert store.outbox_peek(5, after=4) == []
        assert store.outbox_len() == 4


def test_delete_forgets_only_the_given_seqs(tmp_path: Path) -> None:
    with Store(tmp_path / "state.db") as store:
        store.outbox_append(events("a", "b", "c", "d"))
        store.outbox_delete([1, 3])
        store.outbox_delete([3])  # deleting twice is harmless
        assert [r.seq for r in store.outbox_peek(10)] == [2, 4]
        assert store.outbox_len() == 2


def test_trim_drops_the_oldest_and_says_how_many(tmp_path: Path) -> None:
    with Store(tmp_path / "state.db") as store:
        store.outbox_append(events(*"abcdefg"))
        assert store.outbox_trim(10) == 0
        assert store.outbox_trim(3) == 4
        assert [r.topic for r in store.outbox_peek(10)] == ["t/e", "t/f", "t/g"]
        assert store.outbox_trim(0) == 3
        assert store.outbox_len() == 0


def test_the_sequence_never_goes_back(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    with Store(path) as store:
        store.outbox_append(events("a", "b", "c"))
        store.outbox_delete([1, 2, 3])  # everything delivered: the table is empty
        assert store.outbox_next_seq() == 4
        assert store.outbox_append(events("d")) == [4]
        store.outbox_trim(0)
    with Store(path) as store:
        assert store.outbox_len() == 0
        assert store.outbox_next_seq() == 5
        assert store.outbox_append(events("e")) == [5]


def test_an_outbox_append_is_one_transaction(tmp_path: Path) -> None:
    with Store(tmp_path / "state.db") as store:
        store.outbox_append(events("a"))
        bad = [*events("b"), (1.0, None, b"{}")]  # NOT NULL topic: the second insert fails
        with pytest.raises(StoreError, match="cannot append to the outbox"):
            store.outbox_append(bad)  # type: ignore[arg-type]
        assert [r.topic for r in store.outbox_peek(10)] == ["t/a"]


def test_events_survive_a_reopen(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    with Store(path) as store:
        store.outbox_append(events("a", "b"))
    with Store(path) as store:
        assert [(r.seq, r.topic) for r in store.outbox_peek(10)] == [(1, "t/a"), (2, "t/b")]
