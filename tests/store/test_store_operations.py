"""The store's run-time silences, Alertmanager alerts and meta values: round trips across a
reopen, expiry, and the upgrade of a schema-2 file that already holds incidents."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from cdnops.store.db import (
    MIGRATIONS,
    AuditRow,
    ExecutionRow,
    IncidentRow,
    Store,
    TimelineRow,
)


def test_silences_survive_a_reopen_and_ended_ones_are_dropped(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    with Store(path) as store:
        store.put_silence("s1", 200.0, {"id": "s1", "site": "sea01"})
        store.put_silence("s2", 100.0, {"id": "s2"})
        store.put_silence("s1", 300.0, {"id": "s1", "site": "sea02"})  # replaced, not doubled
    with Store(path) as store:
        assert store.silences(now=150.0) == [{"id": "s1", "site": "sea02"}]
        assert store.delete_silence("s1") is True
        assert store.delete_silence("s1") is False
        assert store.silences(now=150.0) == []


def test_an_alert_is_one_row_per_fingerprint(tmp_path: Path) -> None:
    with Store(tmp_path / "state.db") as store:
        store.put_alert("fp1", "inc-1", "firing", 10.0, {"labels": {"alertname": "Hot"}})
        store.put_alert("fp2", "inc-2", "firing", 11.0, {})
        store.put_alert("fp1", "inc-1", "resolved", 12.0, {"labels": {"alertname": "Hot"}})
        assert [(a.fingerprint, a.status) for a in store.alerts()] == [
            ("fp2", "firing"),
            ("fp1", "resolved"),
        ]
        [firing] = store.alerts(status="firing")
        assert firing.incident_id == "inc-2"


def test_meta_values_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    with Store(path) as store:
        assert store.get_meta("mqtt.session") is None
        store.set_meta("mqtt.session", {"seq": 41, "epoch": "a"})
    with Store(path) as store:
        assert store.get_meta("mqtt.session") == {"seq": 41, "epoch": "a"}


def test_a_schema_2_file_is_upgraded_keeping_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    with Store(path) as store:
        store.set_cooldown("restart", "edge-1", 1e12)
    db = sqlite3.connect(path)
    for table in ("outbox", "silences", "alerts", "meta"):
        db.execute(f"DROP TABLE {table}")
    db.execute("UPDATE schema_version SET version = 2")
    db.commit()
    db.close()
    with Store(path) as store:
        assert store.schema_version == len(MIGRATIONS) >= 3
        assert store.cooldowns(now=0.0) == {("restart", "edge-1"): 1e12}
        store.put_silence("s", 1e12, {"id": "s"})
        assert store.silences(now=0.0) == [{"id": "s"}]


def test_prune_forgets_only_what_ended_before_the_cutoff(tmp_path: Path) -> None:
    with Store(tmp_path / "state.db") as store:
        store.write_incidents(
            [
                IncidentRow("old", "k1", "resolved", "sea01", 1.0, 5.0, 10.0, {}),
                IncidentRow("recent", "k2", "resolved", "sea01", 1.0, 5.0, 500.0, {}),
                IncidentRow("open", "k3", "open", "sea01", 1.0, 5.0, None, {}),
            ],
            [TimelineRow("old", 1.0, "opened", ""), TimelineRow("recent", 1.0, "opened", "")],
        )
        done = ExecutionRow(
            "e-old", "pb", "old", "edge-1", "sea01", "succeeded", False, 1.0, 20.0, ""
        )
        running = ExecutionRow(
            "e-run", "pb", "open", "edge-2", "sea01", "running", False, 1.0, None, ""
        )
        audit = [AuditRow(1.0, "e-old", "pb", "old", "edge-1", "matched", {}),
                 AuditRow(1.0, "e-run", "pb", "open", "edge-2", "matched", {})]  # fmt: skip
        store.write_remediation([done, running], audit)
        store.put_alert("fp-old", "old", "resolved", 30.0, {})
        store.put_alert("fp-firing", "open", "firing", 30.0, {})
        store.set_cooldown("pb", "edge-1", 1e12)

        removed = store.prune(before_ts=100.0)

        assert removed == {"timeline": 1, "incidents": 1, "alerts": 1, "audit": 1, "executions": 1}
        assert {i.id for i in store.load_incidents(resolved_since=0.0)} == {"recent", "open"}
        assert store.timeline("old") == []
        assert [e.id for e in store.executions()] == ["e-run"]
        assert [a.execution_id for a in store.audit()] == ["e-run"]
        assert [a.fingerprint for a in store.alerts()] == ["fp-firing"]
        assert store.cooldowns(now=0.0) == {("pb", "edge-1"): 1e12}
        assert store.prune(before_ts=100.0) == dict.fromkeys(removed, 0)


def test_executions_by_id_and_the_newest_few(tmp_path: Path) -> None:
    with Store(tmp_path / "state.db") as store:
        rows = [
            ExecutionRow(f"e{i}", "pb", "inc", f"edge-{i}", "sea01",
                         "running" if i % 2 else "succeeded", False, float(i), None, "")
            for i in range(6)
        ]  # fmt: skip
        store.write_remediation(rows)
        assert [e.id for e in store.executions(newest=3)] == ["e3", "e4", "e5"]
        assert [e.id for e in store.executions(status="running", newest=2)] == ["e3", "e5"]
        assert store.executions(execution_id="e2") == [rows[2]]
        assert store.executions(execution_id="nope") == []
        assert len(store.executions()) == 6
