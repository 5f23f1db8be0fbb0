"""SQLite store in WAL mode: schema versioned and migrated at open, one writer."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from cdnops.errors import StoreError

# Each entry moves the schema from version i to i + 1. Append only: never edit a shipped step.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE incidents (
        id TEXT PRIMARY KEY,
        key TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('open', 'resolved')),
        site TEXT NOT NULL,
        opened_ts REAL NOT NULL,
        last_seen_ts REAL NOT NULL,
        resolved_ts REAL,
        body BLOB NOT NULL
    );
    CREATE INDEX incidents_open ON incidents (status, resolved_ts);
    CREATE TABLE incident_timeline (
        incident_id TEXT NOT NULL REFERENCES incidents (id),
        ts REAL NOT NULL,
        event TEXT NOT NULL,
        detail TEXT NOT NULL
    );
    CREATE INDEX incident_timeline_id ON incident_timeline (incident_id, ts);
    """,
    """
    CREATE TABLE executions (
        id TEXT PRIMARY KEY,
        playbook TEXT NOT NULL,
        incident_id TEXT NOT NULL,
        subject TEXT NOT NULL,
        site TEXT NOT NULL,
        status TEXT NOT NULL,
        dry_run INTEGER NOT NULL,
        started_ts REAL NOT NULL,
        ended_ts REAL,
        detail TEXT NOT NULL
    );
    CREATE INDEX executions_status ON executions (status, started_ts);
    CREATE TABLE remediation_audit (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        ts REAL NOT NULL,
        execution_id TEXT NOT NULL,
        playbook TEXT NOT NULL,
        incident_id TEXT NOT NULL,
        subject TEXT NOT NULL,
        event TEXT NOT NULL,
        detail BLOB NOT NULL
    );
    CREATE INDEX remediation_audit_execution ON remediation_audit (execution_id, seq);
    CREATE TABLE remediation_cooldowns (
        playbook TEXT NOT NULL,
        subject TEXT NOT NULL,
        until_ts REAL NOT NULL,
        PRIMARY KEY (playbook, subject)
    );
    CREATE TABLE remediation_breakers (
        playbook TEXT PRIMARY KEY,
        body BLOB NOT NULL
    );
    """,
    """
    CREATE TABLE outbox (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        ts REAL NOT NULL,
        topic TEXT NOT NULL,
        payload BLOB NOT NULL
    );
    CREATE TABLE silences (
        id TEXT PRIMARY KEY,
        ends_ts REAL NOT NULL,
        body BLOB NOT NULL
    );
    CREATE TABLE alerts (
        fingerprint TEXT PRIMARY KEY,
        incident_id TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('firing', 'resolved')),
        updated_ts REAL NOT NULL,
        body BLOB NOT NULL
    );
    CREATE TABLE meta (
        key TEXT PRIMARY KEY,
        value BLOB NOT NULL
    );
    """,
)


@dataclass(frozen=True, slots=True)
class IncidentRow:
    """An incident as stored: the columns queried on, plus the whole incident as JSON."""

    id: str
    key: str
    status: str  # open | resolved
    site: str
    opened_ts: float
    last_seen_ts: float
    resolved_ts: float | None
    body: dict[str, Any]


@dataclass(frozen=True, slots=True)
class TimelineRow:
    """One line of an incident's timeline."""

    incident_id: str
    ts: float
    event: str
    detail: str


@dataclass(frozen=True, slots=True)
class ExecutionRow:
    """A playbook execution as stored."""

    id: str
    playbook: str
    incident_id: str
    subject: str  # the appliance, or the site of a site playbook
    site: str
    status: str  # running | succeeded | failed | interrupted
    dry_run: bool
    started_ts: float
    ended_ts: float | None
    detail: str


@dataclass(frozen=True, slots=True)
class AuditRow:
    """One remediation decision; `seq` is assigned by the store (0 before it is written)."""

    ts: float
    execution_id: str  # empty for a decision that started no execution
    playbook: str
    incident_id: str
    subject: str
    event: str
    detail: dict[str, Any]
    seq: int = 0


@dataclass(frozen=True, slots=True)
class OutboxRow:
    """An event waiting to be published."""

    seq: int
    ts: float
    topic: str
    payload: bytes


@dataclass(frozen=True, slots=True)
class AlertRow:
    """An alert taken in from Alertmanager and the incident it maps to."""

    fingerprint: str
    incident_id: str
    status: str  # firing | resolved
    updated_ts: float
    body: dict[str, Any]


class Store:
    """The daemon's SQLite file.

    One connection, used only from the thread that created it (the event loop's, in
    the daemon): sqlite3's own check enforces that. WAL with `synchronous=NORMAL`
    makes a commit an append to the log without an fsync, so a tick's writes cost
    well under a millisecond and readers never block the writer; a power loss may
    lose the last commits but never corrupts the file.
    """

    def __init__(self, path: Path, *, busy_timeout_s: float = 1.0) -> None:
        self.path = path
        try:
            # Only another process (an operator's sqlite3 shell) can hold the write lock:
            # wait briefly for it rather than stall the event loop.
            self._db = sqlite3.connect(path, timeout=busy_timeout_s, isolation_level=None)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open store {path}: {exc}") from exc
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._migrate()
        except sqlite3.Error as exc:
            self._db.close()
            raise StoreError(f"cannot open store {path}: {exc}") from exc
        except StoreError:
            self._db.close()
            raise

    @property
    def schema_version(self) -> int:
        """The version the file is at (the number of migrations applied)."""
        row = self._db.execute("SELECT version FROM schema_version").fetchone()
        return int(row[0])

    def _migrate(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            row = self._db.execute("SELECT version FROM schema_version").fetchone()
            if row is None:
                self._db.execute("INSERT INTO schema_version VALUES (0)")
            current = 0 if row is None else int(row[0])
            if current > len(MIGRATIONS):
                raise StoreError(
                    f"store {self.path} has schema version {current}, newer than this "
                    f"cdnops knows ({len(MIGRATIONS)}): upgrade cdnops or use another state_dir"
                )
            for step in MIGRATIONS[current:]:
                for statement in _statements(step):
                    self._db.execute(statement)
            self._db.execute("UPDATE schema_version SET version = ?", (len(MIGRATIONS),))
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    def close(self) -> None:
        """Close the connection; the store is unusable afterwards."""
        self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Group writes into one commit; rolled back if the block raises."""
        try:
            self._db.execute("BEGIN")
        except sqlite3.Error as exc:
            raise StoreError(f"store {self.path}: cannot begin: {exc}") from exc
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        try:
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            raise StoreError(f"store {self.path}: cannot commit: {exc}") from exc

    def write_incidents(
        self,
        incidents: Sequence[IncidentRow],
        timeline: Sequence[TimelineRow] = (),
        seen: Sequence[tuple[str, float]] = (),
    ) -> None:
        """Insert or replace incidents, append timeline lines, and move `last_seen_ts` of
        others (id, ts) forward, in one transaction."""
        if not incidents and not timeline and not seen:
            return
        rows = [
            (i.id, i.key, i.status, i.site, i.opened_ts, i.last_seen_ts, i.resolved_ts,
             orjson.dumps(i.body))
            for i in incidents
        ]  # fmt: skip
        lines = [(t.incident_id, t.ts, t.event, t.detail) for t in timeline]
        try:
            with self.transaction():
                self._db.executemany(
                    "INSERT OR REPLACE INTO incidents VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows
                )
                self._db.executemany("INSERT INTO incident_timeline VALUES (?, ?, ?, ?)", lines)
                self._db.executemany(
                    "UPDATE incidents SET last_seen_ts = ? WHERE id = ?",
                    [(ts, incident_id) for incident_id, ts in seen],
                )
        except sqlite3.Error as exc:
            raise StoreError(f"store {self.path}: cannot write incidents: {exc}") from exc

    def load_incidents(self, *, resolved_since: float | None = None) -> list[IncidentRow]:
        """Open incidents, plus those resolved at or after `resolved_since` if given."""
        query = "SELECT * FROM incidents WHERE status = 'open'"
        params: tuple[float, ...] = ()
        if resolved_since is not None:
            query += " OR (status = 'resolved' AND resolved_ts >= ?)"
            params = (resolved_since,)
        return self._select(query + " ORDER BY opened_ts, id", params)

    def get_incident(self, incident_id: str) -> IncidentRow | None:
        """One incident by id, open or not."""
        rows = self._select("SELECT * FROM incidents WHERE id = ?", (incident_id,))
        return rows[0] if rows else None

    def timeline(self, incident_id: str) -> list[TimelineRow]:
        """An incident's timeline, oldest first."""
        try:
            cur = self._db.execute(
                "SELECT * FROM incident_timeline WHERE incident_id = ? ORDER BY ts, rowid",
                (incident_id,),
            )
            return [TimelineRow(r[0], float(r[1]), r[2], r[3]) for r in cur]
        except sqlite3.Error as exc:
            raise StoreError(f"store {self.path}: cannot read timeline: {exc}") from exc

    def write_remediation(
        self, executions: Sequence[ExecutionRow] = (), audit: Sequence[AuditRow] = ()
    ) -> None:
        """Insert or replace executions and append audit lines, in one transaction."""
        rows = [
            (e.id, e.playbook, e.incident_id, e.subject, e.site, e.status, int(e.dry_run),
             e.started_ts, e.ended_ts, e.detail)
            for e in executions
        ]  # fmt: skip
        lines = [
            (a.ts, a.execution_id, a.playbook, a.incident_id, a.subject, a.event,
             orjson.dumps(a.detail))
            for a in audit
        ]  # fmt: skip
        try:
            with self.transaction():
                self._db.executemany(
                    "INSERT OR REPLACE INTO executions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows
                )
                self._db.executemany(
                    "INSERT INTO remediation_audit (ts, execution_id, playbook, incident_id, "
                    "subject, event, detail) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    lines,
                )
        except sqlite3.Error as exc:
            raise StoreError(f"store {self.path}: cannot write remediation: {exc}") from exc

    def executions(
        self,
        *,
        status: str | None = None,
        execution_id: str | None = None,
        newest: int | None = None,
    ) -> list[ExecutionRow]:
        """Executions, oldest first: of one status, or the one with an id, if given; with
        `newest`, only that many of the most recent (still oldest first)."""
        query = "SELECT * FROM executions"
        where: list[str] = []
        params: list[Any] = []
        if status is not None:
            where.append("status = ?")
            params.append(status)
        if execution_id is not None:
            where.append("id = ?")
            params.append(execution_id)
        if where:
            query += " WHERE " + " AND ".join(where)
        if newest is None:
            query += " ORDER BY started_ts, id"
        else:
            query = f"SELECT * FROM ({query} ORDER BY started_ts DESC, id DESC LIMIT ?)"
            query += " ORDER BY started_ts, id"
            params.append(newest)
        rows = self._rows(query, tuple(params))
        return [
            ExecutionRow(r[0], r[1], r[2], r[3], r[4], r[5], bool(r[6]), float(r[7]),
                         None if r[8] is None else float(r[8]), r[9])
            for r in rows
        ]  # fmt: skip

    def audit(self, execution_id: str | None = None) -> list[AuditRow]:
        """Audit lines (of one execution if given), in the order they were written."""
        query = "SELECT * FROM remediation_audit"
        params: tuple[str, ...] = ()
        if execution_id is not None:
            query, params = query + " WHERE execution_id = ?", (execution_id,)
        return [
            AuditRow(float(r[1]), r[2], r[3], r[4], r[5], r[6], orjson.loads(r[7]), seq=r[0])
            for r in self._rows(query + " ORDER BY seq", params)
        ]

    def set_cooldown(self, playbook: str, subject: str, until_ts: float) -> None:
        """Remember that `playbook` may not run on `subject` before `until_ts`."""
        self._write(
            "INSERT OR REPLACE INTO remediation_cooldowns VALUES (?, ?, ?)",
            (playbook, subject, until_ts),
        )

    def cooldowns(self, now: float) -> dict[tuple[str, str], float]:
        """Cooldowns still running at `now`; expired ones are deleted."""
        self._write("DELETE FROM remediation_cooldowns WHERE until_ts <= ?", (now,))
        rows = self._rows("SELECT * FROM remediation_cooldowns", ())
        return {(r[0], r[1]): float(r[2]) for r in rows}

    def set_breaker(self, playbook: str, body: dict[str, Any]) -> None:
        """Save a playbook's circuit breaker."""
        self._write(
            "INSERT OR REPLACE INTO remediation_breakers VALUES (?, ?)",
            (playbook, orjson.dumps(body)),
        )

    def breakers(self) -> dict[str, dict[str, Any]]:
        """Every saved circuit breaker by playbook."""
        rows = self._rows("SELECT * FROM remediation_breakers", ())
        return {r[0]: orjson.loads(r[1]) for r in rows}

    # The event outbox: events wait here until the MQTT side has them acknowledged, so a
    # broker outage or a restart loses none. `seq` orders them and numbers them per daemon.

    def outbox_append(self, events: Sequence[tuple[float, str, bytes]]) -> list[int]:
        """Append (ts, topic, payload) events in one transaction; returns their seqs."""
        seqs = []
        try:
            with self.transaction():
                for ts, topic, payload in events:
                    cur = self._db.execute(
                        "INSERT INTO outbox (ts, topic, payload) VALUES (?, ?, ?)",
                        (ts, topic, payload),
                    )
                    seqs.append(int(cur.lastrowid or 0))
        except sqlite3.Error as exc:
            raise StoreError(f"store {self.path}: cannot append to the outbox: {exc}") from exc
        return seqs

    def outbox_next_seq(self) -> int:
        """The seq the next appended event will get (sequence numbers never go back)."""
        row = self._rows("SELECT seq FROM sqlite_sequence WHERE name = 'outbox'", ())
        return (int(row[0][0]) if row else 0) + 1

    def outbox_peek(self, limit: int, *, after: int = 0) -> list[OutboxRow]:
        """The oldest `limit` events with seq > `after`, oldest first."""
        rows = self._rows("SELECT * FROM outbox WHERE seq > ? ORDER BY seq LIMIT ?", (after, limit))
        return [OutboxRow(int(r[0]), float(r[1]), r[2], bytes(r[3])) for r in rows]

    def outbox_delete(self, seqs: Sequence[int]) -> None:
        """Forget delivered events."""
        try:
            self._db.executemany("DELETE FROM outbox WHERE seq = ?", [(s,) for s in seqs])
        except sqlite3.Error as exc:
            raise StoreError(f"store {self.path}: cannot write: {exc}") from exc

    def outbox_len(self) -> int:
        """How many events wait."""
        return int(self._rows("SELECT count(*) FROM outbox", ())[0][0])

    def outbox_trim(self, keep: int) -> int:
        """Drop the oldest events beyond `keep`; returns how many were dropped."""
        excess = self.outbox_len() - keep
        if excess <= 0:
            return 0
        self._write(
            "DELETE FROM outbox WHERE seq IN (SELECT seq FROM outbox ORDER BY seq LIMIT ?)",
            (excess,),
        )
        return excess

    # Silences made at run time (API, MQTT commands, the `silence` action); config silences
    # come from the config file and are not stored.

    def put_silence(self, silence_id: str, ends_ts: float, body: dict[str, Any]) -> None:
        """Insert or replace a silence."""
        self._write(
            "INSERT OR REPLACE INTO silences VALUES (?, ?, ?)",
            (silence_id, ends_ts, orjson.dumps(body)),
        )

    def delete_silence(self, silence_id: str) -> bool:
        """Forget a silence; returns whether it was stored."""
        try:
            cur = self._db.execute("DELETE FROM silences WHERE id = ?", (silence_id,))
        except sqlite3.Error as exc:
            raise StoreError(f"store {self.path}: cannot write: {exc}") from exc
        return cur.rowcount > 0

    def silences(self, now: float) -> list[dict[str, Any]]:
        """Stored silences that have not ended at `now`; ended ones are deleted."""
        self._write("DELETE FROM silences WHERE ends_ts <= ?", (now,))
        return [orjson.loads(r[0]) for r in self._rows("SELECT body FROM silences ORDER BY id", ())]

    # Alerts taken in from Alertmanager, by fingerprint: the same alert twice is one incident.

    def put_alert(
        self, fingerprint: str, incident_id: str, status: str, ts: float, body: dict[str, Any]
    ) -> None:
        """Insert or replace an alert."""
        self._write(
            "INSERT OR REPLACE INTO alerts VALUES (?, ?, ?, ?, ?)",
            (fingerprint, incident_id, status, ts, orjson.dumps(body)),
        )

    def alerts(self, *, status: str | None = None) -> list[AlertRow]:
        """Stored alerts (of one status if given), oldest update first."""
        query = "SELECT * FROM alerts"
        params: tuple[str, ...] = ()
        if status is not None:
            query, params = query + " WHERE status = ?", (status,)
        return [
            AlertRow(r[0], r[1], r[2], float(r[3]), orjson.loads(r[4]))
            for r in self._rows(query + " ORDER BY updated_ts, fingerprint", params)
        ]

    def prune(self, before_ts: float) -> dict[str, int]:
        """Forget what ended before `before_ts`: resolved incidents with their timelines,
        resolved alerts, finished executions with their audit. Open incidents, running
        executions, cooldowns and breakers are never pruned. Returns the rows removed."""
        steps = {
            "timeline": "DELETE FROM incident_timeline WHERE incident_id IN (SELECT id FROM "
            "incidents WHERE status = 'resolved' AND resolved_ts < ?)",
            "incidents": "DELETE FROM incidents WHERE status = 'resolved' AND resolved_ts < ?",
            "alerts": "DELETE FROM alerts WHERE status = 'resolved' AND updated_ts < ?",
            "audit": "DELETE FROM remediation_audit WHERE execution_id IN (SELECT id FROM "
            "executions WHERE ended_ts IS NOT NULL AND ended_ts < ?)",
            "executions": "DELETE FROM executions WHERE ended_ts IS NOT NULL AND ended_ts < ?",
        }
        removed = {}
        try:
            with self.transaction():
                for name, query in steps.items():
                    removed[name] = self._db.execute(query, (before_ts,)).rowcount
        except sqlite3.Error as exc:
            raise StoreError(f"store {self.path}: cannot prune: {exc}") from exc
        return removed

    # Small values that must survive a restart (e.g. the MQTT sequence), as JSON.

    def get_meta(self, key: str) -> Any:
        """A stored value, or None."""
        rows = self._rows("SELECT value FROM meta WHERE key = ?", (key,))
        return orjson.loads(rows[0][0]) if rows else None

    def set_meta(self, key: str, value: Any) -> None:
        """Store a value."""
        self._write("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, orjson.dumps(value)))

    def _write(self, query: str, params: tuple[Any, ...]) -> None:
        try:
            self._db.execute(query, params)
        except sqlite3.Error as exc:
            raise StoreError(f"store {self.path}: cannot write: {exc}") from exc

    def _rows(self, query: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        try:
            return list(self._db.execute(query, params))
        except sqlite3.Error as exc:
            raise StoreError(f"store {self.path}: cannot read: {exc}") from exc

    def _select(self, query: str, params: tuple[Any, ...]) -> list[IncidentRow]:
        try:
            cur = self._db.execute(query, params)
            return [
                IncidentRow(r[0], r[1], r[2], r[3], float(r[4]), float(r[5]),
                            None if r[6] is None else float(r[6]), orjson.loads(r[7]))
                for r in cur
            ]  # fmt: skip
        except (sqlite3.Error, orjson.JSONDecodeError) as exc:
            raise StoreError(f"store {self.path}: cannot read incidents: {exc}") from exc


def _statements(script: str) -> list[str]:
    # executescript() would commit the open transaction; run the steps one by one instead.
    return [s.strip() for s in script.split(";") if s.strip()]
