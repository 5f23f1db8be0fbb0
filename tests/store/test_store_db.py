"""The SQLite store: migration at open, reopen, round trips, clear errors."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from cdnops.errors import StoreError
from cdnops.store.db import MIGRATIONS, IncidentRow, Store, TimelineRow


def row(incident_id: str, status: str = "open", resolved: float | None = None) -> IncidentRow:
    return IncidentRow(
        id=incident_id,
        key=f"appliance/{incident_id}/metric/cpu_util",
        status=status,
        site="sea01",
        opened_ts=100.0,
        last_seen_ts=110.0,
        resolved_ts=resolved,
        body={"flaps": 2, "nested": {"x": [1, 2.5, None]}},
    )


def test_migrates_an_empty_file_and_reopens(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    path.touch()
    store = Store(path)
    assert store.schema_version == len(MIGRATIONS)
    store.write_incidents([row("a")], [TimelineRow("a", 100.0, "opened", "")])
    store.close()

    again = Store(path)
    try:
        assert again.schema_version == len(MIGRATIONS)
        assert again.load_incidents() == [row("a")]
        db = sqlite3.connect(path)
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        db.close()
    finally:
        again.close()


def test_creates_a_missing_file(tmp_path: Path) -> None:
    with Store(tmp_path / "new.db") as store:
        assert store.load_incidents() == []
    assert (tmp_path / "new.db").exists()


def test_load_open_and_recently_resolved(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    try:
        store.write_incidents([row("a"), row("b", "resolved", 200.0), row("c", "resolved", 50.0)])
        assert [r.id for r in store.load_incidents()] == ["a"]
        assert [r.id for r in store.load_incidents(resolved_since=100.0)] == ["a", "b"]
        store.write_incidents([row("a", "resolved", 300.0)])  # replaces
        assert store.load_incidents() == []
        assert store.get_incident("a") == row("a", "resolved", 300.0)
        assert store.get_incident("zzz") is None
    finally:
        store.close()


def test_timeline_in_order(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    try:
        lines = [TimelineRow("a", 1.0, "opened", ""), TimelineRow("a", 1.0, "absorbed", "x")]
        store.write_incidents([row("a")], lines)
        store.write_incidents([], [TimelineRow("a", 2.0, "resolved", "")])
        assert [t.event for t in store.timeline("a")] == ["opened", "absorbed", "resolved"]
    finally:
        store.close()


def test_failed_write_rolls_back(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    try:
        with pytest.raises(StoreError, match="cannot write incidents"):
            # The timeline line names an incident that does not exist: foreign key error.
            store.write_incidents([row("a")], [TimelineRow("ghost", 1.0, "opened", "")])
        assert store.load_incidents() == []
    finally:
        store.close()


def test_not_a_database_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match=r"cannot open store .*state\.db"):
        Store(path)


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    Store(path).close()
    db = sqlite3.connect(path)
    db.execute("UPDATE schema_version SET version = 99")
    db.commit()
    db.close()
    with pytest.raises(StoreError, match="schema version 99, newer than this cdnops knows"):
        Store(path)


def test_missing_directory_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="cannot open store"):
        Store(tmp_path / "no" / "such" / "dir.db")


def test_seen_updates_only_last_seen(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    try:
        store.write_incidents([row("a")])
        store.write_incidents([], seen=[("a", 500.0), ("ghost", 1.0)])
        loaded = store.get_incident("a")
        assert loaded is not None
        assert loaded.last_seen_ts == 500.0
        assert loaded.body == row("a").body
    finally:
        store.close()


def test_locked_by_another_writer_is_a_store_error(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store = Store(path, busy_timeout_s=0.05)
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        with pytest.raises(StoreError, match="database is locked"):
            store.write_incidents([row("a")])
        other.execute("ROLLBACK")
        store.write_incidents([row("a")])
        assert [r.id for r in store.load_incidents()] == ["a"]
    finally:
        other.close()
        store.close()
