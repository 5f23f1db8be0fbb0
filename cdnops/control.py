"""What an operator can ask of a running daemon, in one place: the HTTP API and the MQTT
command topic both call `Control`, so a request means the same whichever way it comes.

Operations raise a `ControlError` subclass with a message an operator understands
(`NotFoundError`, `ConflictError`, `InvalidError`, `UnavailableError`); the callers map
them onto their own answers (HTTP status, MQTT reply). Every method runs on the event
loop's thread, which owns the store's connection; only the playbook reload reads files,
and it does so in a worker thread.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from cdnops.commands import CommandError, SilenceRequest
from cdnops.errors import ConfigError, StoreError
from cdnops.incidents.model import Incident, Status, TimelineEntry
from cdnops.incidents.persist import from_row
from cdnops.incidents.silences import Silence
from cdnops.incidents.tracker import IncidentTracker
from cdnops.model import DetectionResult, FleetFrame
from cdnops.remediate.engine import ManualTriggerError, Remediator
from cdnops.remediate.loader import PlaybookSet
from cdnops.store.db import AuditRow, ExecutionRow, Store

log = logging.getLogger("cdnops.control")

# How far back `incidents?status=resolved` looks.
RESOLVED_HORIZON_S = 86400.0

LatestFn = Callable[[], tuple[FleetFrame | None, DetectionResult | None]]


class ControlError(Exception):
    """A request the daemon cannot carry out; the message is for the operator."""


class NotFoundError(ControlError):
    """No such incident, execution, silence or playbook."""


class ConflictError(ControlError):
    """The request is valid but the daemon's state refuses it now."""


class InvalidError(ControlError):
    """The request is not valid; `problems` lists each one (e.g. file:line errors)."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or []


class UnavailableError(ControlError):
    """The part that would answer is disabled or failing (remediation off, store error)."""


class Intake(Protocol):
    """The Alertmanager intake, as Control sees it."""

    def ingest(self, payload: object) -> Any: ...


@dataclass(frozen=True, slots=True)
class ReloadResult:
    """A playbook reload that was taken: how many playbooks, from which files."""

    playbooks: int
    files: tuple[str, ...]


class Control:
    """The operations of issue 6, over the tracker, the store and the remediator."""

    def __init__(
        self,
        tracker: IncidentTracker,
        store: Store,
        *,
        latest: LatestFn,
        remediator: Remediator | None = None,
        load_playbooks: Callable[[], PlaybookSet] | None = None,
        intake: Intake | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Args:
        tracker: the incident tracker (incidents, silences, acknowledgements).
        store: the daemon's store (run-time silences, executions, audit).
        latest: returns the poller's latest frame and detection result.
        remediator: None when remediation is disabled; may be set later (`remediator`).
        load_playbooks: re-reads the playbooks folder (blocking: it runs in a thread).
        intake: the Alertmanager intake, if enabled.
        clock: wall clock, seconds.
        """
        self.tracker = tracker
        self.store = store
        self.latest = latest
        self.remediator = remediator
        self.intake = intake
        self._load_playbooks = load_playbooks
        self._clock = clock
        self._reloading = asyncio.Lock()

    # -- silences -------------------------------------------------------------------
    def restore_silences(self) -> int:
        """Put the stored run-time silences back into the tracker (at start); returns how many.

        A stored silence this code cannot read is logged and skipped.
        """
        n = 0
        for body in self.store.silences(self._clock()):
            try:
                self.tracker.silences.add(Silence.from_json(body))
            except ValueError as exc:
                log.warning("stored silence %r skipped: %s", body.get("id"), exc)
                continue
            n += 1
        if n:
            log.info("silences restored from the store: %d", n)
        return n

    def create_silence(self, req: SilenceRequest, *, source: str = "api") -> Silence:
        """Make, store and apply a silence (it takes effect at the next tick)."""
        try:
            starts, ends = req.window(self._clock())
        except CommandError as exc:
            raise InvalidError("the request is not valid", exc.problems) from None
        silence = Silence(
            id=f"sil-{uuid.uuid4().hex[:12]}",
            starts_ts=starts,
            ends_ts=ends,
            comment=req.comment,
            appliance=req.appliance,
            site=req.site,
            labels=dict(req.labels),
            metric=req.metric,
            kind=req.kind,
            created_by=req.by or source,
        )
        try:
            self.store.put_silence(silence.id, silence.ends_ts, silence.to_json())
        except StoreError as exc:
            raise UnavailableError(f"the silence was not saved: {exc}") from exc
        self.tracker.silences.add(silence)
        log.info(
            "silence %s created by %s until %.0f: %s",
            silence.id,
            silence.created_by,
            ends,
            silence.comment,
        )
        return silence

    def add_silence(self, silence: Silence) -> None:
        """Apply and store a silence made by the daemon itself (the playbooks' `silence` step).

        A store failure is logged: the silence still applies until the next restart.
        """
        self.tracker.silences.add(silence)
        try:
            self.store.put_silence(silence.id, silence.ends_ts, silence.to_json())
        except StoreError as exc:
            log.error("silence %s applies but was not saved: %s", silence.id, exc)

    def silences(self) -> list[Silence]:
        """Every silence not ended yet (config and run-time), soonest end first."""
        now = self._clock()
        return sorted(
            (s for s in self.tracker.silences.all() if s.ends_ts > now),
            key=lambda s: (s.ends_ts, s.id),
        )

    def config_silence_ids(self) -> set[str]:
        """Ids of the silences written in the config file."""
        return {
            Silence.from_config(c, i).id
            for i, c in enumerate(self.tracker.config.silences)
        }  # fmt: skip

    def expire_silence(self, silence_id: str) -> bool:
        """End a run-time silence now; False when there is none with that id."""
        if silence_id in self.config_silence_ids():
            raise ConflictError(
                f"silence {silence_id} is written in the config file: remove it there "
                "and reload (SIGHUP)"
            )
        try:
            stored = self.store.delete_silence(silence_id)
        except StoreError as exc:
            raise UnavailableError(f"the silence was not removed: {exc}") from exc
        removed = self.tracker.silences.remove(silence_id)
        if stored or removed:
            log.info("silence %s expired", silence_id)
        return stored or removed

    # -- incidents ------------------------------------------------------------------
    def incident(self, incident_id: str) -> Incident:
        """An incident by id, open or resolved (raises NotFoundError)."""
        inc = self.tracker.get(incident_id)
        if inc is not None:
            return inc
        row = self.store.get_incident(incident_id)
        if row is None:
            raise NotFoundError(f"no incident {incident_id}")
        return from_row(row)

    def timeline(self, incident_id: str) -> list[TimelineEntry]:
        """An incident's timeline, oldest first."""
        return self.tracker.timeline(incident_id)

    def incidents(
        self,
        *,
        status: str | None,
        site: str | None,
        resolved_since: float | None = None,
    ) -> list[Incident]:
        """Open incidents (newest first), then those resolved at or after `resolved_since`
        (default: in the last day; newest first)."""
        found: list[Incident] = []
        if status in (None, "open"):
            found.extend(sorted(self.tracker.open_incidents(), key=lambda i: -i.opened_ts))
        if status in (None, "resolved"):
            if resolved_since is None:
                resolved_since = self._clock() - RESOLVED_HORIZON_S
            rows = self.store.load_incidents(resolved_since=resolved_since)
            resolved = [from_row(r) for r in rows if r.status == Status.RESOLVED]
            found.extend(sorted(resolved, key=lambda i: -(i.resolved_ts or 0.0)))
        if site is not None:
            found = [i for i in found if i.site == site]
        return found

    def acknowledge(self, incident_id: str, by: str, comment: str = "") -> Incident:
        """Mark an open or recently resolved incident as taken on by `by`."""
        inc = self.tracker.acknowledge(incident_id, by or "operator", comment)
        if inc is None:
            if self.store.get_incident(incident_id) is not None:
                raise ConflictError(
                    f"incident {incident_id} was resolved too long ago to be acknowledged"
                )
            raise NotFoundError(f"no incident {incident_id}")
        return inc

    # -- executions -----------------------------------------------------------------
    def executions(self, *, status: str | None, limit: int, offset: int = 0) -> list[ExecutionRow]:
        """The latest executions (of one status if given), newest first, skipping the
        `offset` newest."""
        return self.store.executions(status=status, newest=limit + offset)[::-1][offset:]

    def execution(self, execution_id: str) -> tuple[ExecutionRow, list[AuditRow]]:
        """One execution with its audit lines (raises NotFoundError)."""
        rows = self.store.executions(execution_id=execution_id)
        if not rows:
            raise NotFoundError(f"no execution {execution_id}")
        return rows[0], self.store.audit(execution_id)

    # -- playbooks ------------------------------------------------------------------
    def _remediation(self) -> Remediator:
        if self.remediator is None:
            raise UnavailableError(
                "remediation is disabled (remediation.enabled: false in the config)"
            )
        return self.remediator

    def playbooks(self) -> PlaybookSet:
        """The running playbook set (empty when remediation is disabled)."""
        return self.remediator.playbooks if self.remediator is not None else PlaybookSet()

    def breaker_state(self, playbook: str) -> str:
        """closed, open or half_open."""
        return self._remediation().guards.breaker_state(playbook)

    async def reload_playbooks(self) -> ReloadResult:
        """Re-read the playbooks off the loop; a bad set is rejected and the running one kept."""
        remediator = self._remediation()
        if self._load_playbooks is None:
            raise UnavailableError("this daemon has no playbooks folder to reload from")
        async with self._reloading:
            try:
                new = await asyncio.to_thread(self._load_playbooks)
            except ConfigError as exc:
                log.error("playbook reload rejected, keeping the running set:\n%s", exc)
                problems = [str(i) for i in exc.issues]
                raise InvalidError(
                    f"the playbooks have {len(problems)} errors; the running set is kept",
                    problems,
                ) from None
            remediator.replace_playbooks(new)
        log.info("playbooks reloaded: %d from %d files", len(new), len(new.files))
        return ReloadResult(len(new), new.files)

    def reset_breaker(self, playbook: str, by: str) -> bool:
        """Close a playbook's breaker; returns whether it was open or half-open."""
        remediator = self._remediation()
        if playbook not in remediator.playbooks.playbooks:
            raise NotFoundError(f"no playbook {playbook}")
        return remediator.reset_breaker(playbook, by=by or "operator")

    def run_playbook(self, playbook: str, subject: str, by: str, reason: str = "") -> str:
        """Start a playbook by hand on `subject`; returns the execution id."""
        remediator = self._remediation()
        if playbook not in remediator.playbooks.playbooks:
            raise NotFoundError(f"no playbook {playbook}")
        try:
            execution = remediator.run_manual(playbook, subject, by=by or "operator", reason=reason)
        except ManualTriggerError as exc:  # the remediator says why not
            raise ConflictError(str(exc)) from None
        return execution.id

    # -- Alertmanager ---------------------------------------------------------------
    def ingest_alertmanager(self, payload: object) -> dict[str, Any]:
        """Hand an Alertmanager webhook payload to the intake; returns its result as JSON."""
        if self.intake is None:
            raise UnavailableError("the Alertmanager intake is not enabled in the config")
        try:
            result = self.intake.ingest(payload)
        except ValueError as exc:  # IntakeError: the payload is not what Alertmanager sends
            raise InvalidError(str(exc)) from None
        out: dict[str, Any] = result.to_json()
        return out
