"""The incident tracker: detection results in, incidents out, one tick at a time."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from cdnops.config.incidents import IncidentsConfig
from cdnops.incidents.correlate import Symptoms, fleet_members, qualifies
from cdnops.incidents.events import Change as C
from cdnops.incidents.events import EventBus, EventType, open_counts
from cdnops.incidents.fleetview import FleetView
from cdnops.incidents.history import History
from cdnops.incidents.journal import Journal, timeline_entries
from cdnops.incidents.model import (
    Incident,
    IncidentKind,
    Key,
    Scope,
    Severity,
    Status,
    TimelineEntry,
    appliance_slot,
    evidence_lead_s,
    kind_of,
    severity_of,
    signature,
    slot,
    trigger_of,
)
from cdnops.incidents.persist import from_row
from cdnops.incidents.silences import Silences
from cdnops.incidents.triage import Triage
from cdnops.incidents.triagequeue import TriageQueue
from cdnops.model import Anomaly, DetectionResult, FleetFrame
from cdnops.store.db import Store

log = logging.getLogger("cdnops.incidents")

# `last_seen` alone is rewritten at most this often: after a restart it only feeds the
# grouping window, and detection reports every still-active anomaly on its first tick.
PERSIST_SEEN_EVERY_S = 60.0
SCOPES = (Scope.APPLIANCE, Scope.SITE, Scope.FLEET)


class IncidentTracker:
    """Turns each tick's anomalies into incidents, kept in the store.

    `update` is called on the event loop once per tick; its cost is proportional to
    the active anomalies and open incidents (plus O(n) numpy for appliance states and
    the triage history), and it writes the store only when something changed.
    Triage runs in the `Triage` pool; results are attached on a later `update`
    (or `collect_triage`).
    """

    def __init__(
        self,
        config: IncidentsConfig,
        store: Store,
        bus: EventBus,
        *,
        clock: Callable[[], float] = time.time,
        triage: Triage | None = None,
        silences: Silences | None = None,
    ) -> None:
        self.config = config
        self.silences = silences if silences is not None else Silences.from_config(config.silences)
        self._clock = clock
        self._journal = Journal(store, bus)
        enabled = triage is not None or config.triage.enabled
        self._triage = TriageQueue(config.triage, triage) if enabled else None
        self._view = FleetView(config.excluded_states)
        self._open: dict[Key, Incident] = {}
        self._by_scope: dict[Scope, dict[Key, Incident]] = {s: {} for s in Scope}
        self._recent: dict[Key, Incident] = {}  # resolved within the hold-down window
        self._symptoms = Symptoms()
        self._saved_seen: dict[str, float] = {}
        self._any_waiting = False
        self._site_firing: dict[str, int] = {}
        self._load(store)
        self._set_gauges(self._clock())

    def _load(self, store: Store) -> None:
        now = self._clock()
        for row in store.load_incidents(resolved_since=now - self.config.hold_down_s):
            inc = from_row(row)
            self._saved_seen[inc.id] = inc.last_seen_ts
            if inc.status is Status.RESOLVED:
                self._recent[slot(inc.key)] = inc
            elif slot(inc.key) in self._open:
                log.warning("store holds two open incidents for %s; keeping %s", inc.key, inc.id)
            else:
                self._add_open(inc)
        log.info("incidents loaded from the store: open=%d", len(self._open))

    @property
    def history(self) -> History | None:
        """The history kept for triage (None when triage is off)."""
        return self._triage.history if self._triage is not None else None

    def reload(self, config: IncidentsConfig) -> None:
        """Apply a reloaded `incidents:` section from the next tick on.

        Thresholds, windows, families, excluded states and the config's silences change;
        silences added at run time stay; triage keeps its pool and history size.
        """
        self.silences.replace_config(self.config.silences, config.silences)
        self._view.set_excluded(config.excluded_states)
        self.config = config

    def close(self) -> None:
        """Drop triage jobs in flight; stop the triage pool if the tracker made it."""
        if self._triage is not None:
            self._triage.close()

    def __enter__(self) -> IncidentTracker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open_incidents(self) -> list[Incident]:
        """Copies of every open incident, silenced and inhibited ones included."""
        return [inc.snapshot() for inc in self._open.values()]

    def releasable(self) -> list[Incident]:
        """Open, not inhibited, not silenced, past `group_wait_s`: what automation may act on."""
        now = self._clock()
        return [
            inc.snapshot()
            for inc in self._open.values()
            if not inc.inhibited and not inc.silenced and not self._waiting(inc, now)
        ]

    def get(self, incident_id: str) -> Incident | None:
        """An open or recently resolved incident by id."""
        inc = self._find(incident_id)
        return inc.snapshot() if inc is not None else None

    def timeline(self, incident_id: str) -> list[TimelineEntry]:
        """An incident's whole timeline, from the store."""
        return timeline_entries(self._journal.store.timeline(incident_id))

    def acknowledge(self, incident_id: str, by: str, comment: str) -> Incident | None:
        """Record that `by` took the incident on; None when no open or recent one has that id.

        The timeline line and the incident are written at once (not at the next tick), so
        the caller can read them back; subscribers get an `updated` / `acknowledged` event.
        """
        inc = self._find(incident_id)
        if inc is None:
            return None
        inc.acknowledged_by = by
        detail = f"by {by}: {comment}" if comment else f"by {by}"
        self._journal.emit(inc, EventType.UPDATED, self._clock(), C.ACKNOWLEDGED, detail)
        self._journal.flush()
        return inc.snapshot()

    def _waiting(self, inc: Incident, now: float) -> bool:
        # From the first evidence, as Alertmanager counts group_wait from the first alert:
        # the site's peers started showing the problem within a poll of this appliance,
        # so the wait overlaps detection's confirmation rather than following it. A
        # reopening restarts it.
        wait = self.config.group_wait_s
        if inc.reopened_ts is not None:
            return now - inc.reopened_ts < wait
        if now - inc.opened_ts >= wait:
            return False
        if inc.onset_ts is None or now - inc.onset_ts < wait:
            return True
        # Past the wait from the evidence but not from the opening: peers whose own
        # evidence is not confirmed yet could still make this a site incident. Hold it the
        # full wait while the site's firing appliances are enough for one
        # (docs/incidents.md, "What the wait guarantees").
        return inc.scope is Scope.APPLIANCE and self._site_may_group(inc.site)

    def _site_may_group(self, site: str) -> bool:
        firing = self._site_firing.get(site, 0)
        return qualifies(firing, self._view.site_sizes.get(site, 0), self.config.site)

    def _note_firing(self, frame: FleetFrame, result: DetectionResult) -> None:
        """Count, per site, the appliances with any verdict firing this tick."""
        if result.firing is None or len(result.firing) != len(frame.site_index):
            self._site_firing = {}
            return
        counts = np.bincount(frame.site_index[result.firing], minlength=len(frame.sites))
        self._site_firing = {frame.sites[i]: int(c) for i, c in enumerate(counts) if c}

    def update(self, frame: FleetFrame, result: DetectionResult) -> None:
        """Take in one tick: open, absorb, flap, correlate, silence, resolve; then write."""
        now = self._clock()
        self._view.update(frame)
        self._note_firing(frame, result)
        if self._triage is not None:
            self._triage.append(frame)
        self._collect(now)
        self._track_appliances(result, now)
        self._correlate(now)
        self._apply_silences(now)
        self._resolve_quiet(now)
        self._announce(now)
        self._forget_recent(now)
        self._flush(now)

    def _track_appliances(self, result: DetectionResult, now: float) -> None:
        groups: dict[str, list[Anomaly]] = {}
        for a in result.active:
            if not self._view.is_excluded(a.appliance):
                groups.setdefault(a.appliance, []).append(a)
                site_key = Key(Scope.SITE, a.site, kind_of(a.metric), self._family(a.metric))
                self._symptoms.note(site_key, a.appliance, now)
        entered = {signature(a) for a in result.entered}
        for appliance, anomalies in groups.items():
            key = appliance_slot(appliance)
            inc = self._open.get(key) or self._reopen(key, now)
            if inc is None:
                self._open_new(self._appliance_key(appliance, anomalies), anomalies, now)
                continue
            new = [a for a in anomalies if signature(a) in entered] if entered else []
            self._seen(inc, now, new)
        for inc in self._by_scope[Scope.APPLIANCE].values():
            if inc.active and inc.subject not in groups:
                self._go_quiet(inc, now)

    def _family(self, metric: str) -> str:
        return self.config.families.get(metric, metric)

    def _appliance_key(self, appliance: str, anomalies: Sequence[Anomaly]) -> Key:
        trigger = trigger_of(anomalies)
        kind = kind_of(trigger.metric)
        return Key(Scope.APPLIANCE, appliance, kind, self._family(trigger.metric))

    def _open_new(self, key: Key, anomalies: Sequence[Anomaly], now: float) -> Incident:
        trigger = trigger_of(anomalies) if anomalies else None
        inc = Incident(
            id=f"inc-{uuid.uuid4().hex[:16]}",
            key=key,
            site=key.subject if key.scope is Scope.SITE else (trigger.site if trigger else ""),
            metric=trigger.metric if trigger else key.family,
            severity=severity_of(key.scope, anomalies),
            opened_ts=now,
            first_seen_ts=min((a.since_ts for a in anomalies), default=now),
            last_seen_ts=now,
            labels=self._view.labels(key.subject) if key.scope is Scope.APPLIANCE else {},
            # site and fleet incidents open on their members' incidents, not on evidence
            # of their own: their wait (for the fleet to form) runs from their opening
            onset_ts=now - evidence_lead_s(anomalies) if anomalies else None,
        )
        self._add_anomalies(inc, anomalies)
        self._add_open(inc)
        self._journal.note(inc, now, "opened", inc.summary())
        return inc

    def _reopen(self, key: Key, now: float) -> Incident | None:
        inc = self._recent.pop(key, None)
        if inc is None:
            return None
        inc.status, inc.resolved_ts, inc.reopened_ts = Status.OPEN, None, now
        inc.active, inc.quiet_since_ts, inc.last_seen_ts = True, None, now
        inc.flaps += 1
        self._add_open(inc)
        # Consumers saw it resolve: they get `opened` again, with the flap count.
        inc.announced = False
        self._journal.note(inc, now, "reopened", f"flap {inc.flaps} within the hold-down")
        return inc

    def _seen(self, inc: Incident, now: float, new: Sequence[Anomaly]) -> None:
        inc.last_seen_ts = now
        if new:
            # After a restart detection may report again what the incident already holds.
            known = {signature(a) for a in inc.anomalies}
            new = [a for a in new if signature(a) not in known]
        if new:
            self._add_anomalies(inc, new)
        if not inc.active:
            # A recurrence is one `flapped` update, whatever anomalies came back with it.
            inc.active, inc.quiet_since_ts = True, None
            inc.flaps += 1
            self._journal.emit(inc, EventType.UPDATED, now, C.FLAPPED, f"flap {inc.flaps}")
        elif new:
            detail = ", ".join(f"{a.metric}/{a.detector}" for a in new)
            self._journal.emit(inc, EventType.UPDATED, now, C.ABSORBED, detail)

    def _go_quiet(self, inc: Incident, now: float) -> None:
        inc.active, inc.quiet_since_ts = False, now
        self._journal.note(inc, now, "quiet")

    def _add_anomalies(self, inc: Incident, anomalies: Sequence[Anomaly]) -> None:
        inc.anomalies = (*inc.anomalies, *anomalies)[-self.config.max_anomalies_kept :]
        inc.absorbed_total += len(anomalies)
        if severity_of(inc.scope, anomalies) is Severity.CRITICAL:
            inc.severity = Severity.CRITICAL

    def _correlate(self, now: float) -> None:
        """Group by family: open parents take every recent member, others open if enough."""
        cfg, since = self.config, now - self.config.grouping_window_s
        self._symptoms.prune(since)
        for key, members in self._symptoms.members().items():
            size = self._view.site_sizes.get(key.subject, 0)
            if key in self._open or qualifies(len(members), size, cfg.site):
                self._group(key, members, now)
        for site in self._of_scope(Scope.SITE):
            self._refresh(site, self._symptoms.active(site.key, now), now)
        sites = self._of_scope(Scope.SITE)
        for key, members in fleet_members(sites, since).items():
            if key in self._open or qualifies(len(members), self._view.n_sites, cfg.fleet):
                self._group(key, members, now)
        active = {s.parent for s in self._of_scope(Scope.SITE) if s.active}
        for fleet in self._of_scope(Scope.FLEET):
            self._refresh(fleet, fleet.id in active, now)

    def _of_scope(self, scope: Scope) -> list[Incident]:
        return list(self._by_scope[scope].values())

    def _add_open(self, inc: Incident) -> None:
        self._open[slot(inc.key)] = inc
        self._by_scope[inc.scope][slot(inc.key)] = inc

    def _group(self, key: Key, members: tuple[str, ...], now: float) -> None:
        parent = self._open.get(key) or self._reopen(key, now) or self._open_new(key, [], now)
        for subject in members:
            joined = subject not in parent.members
            if joined:
                parent.members = (*parent.members, subject)
            child = self._open.get(self._child_slot(key, subject))
            if child is None:
                continue
            if child.parent is None:  # also a member that flapped back after resolving
                self._inhibit(child, parent, now)
            if joined:
                evidence = [a for a in child.anomalies if self._family(a.metric) == key.family]
                self._absorb_child(parent, child, evidence or list(child.anomalies), now)

    @staticmethod
    def _child_slot(key: Key, subject: str) -> Key:
        if key.scope is Scope.SITE:
            return appliance_slot(subject)
        return key._replace(scope=Scope.SITE, subject=subject)

    def _inhibit(self, child: Incident, parent: Incident, now: float) -> None:
        child.parent = parent.id
        self._journal.emit(child, EventType.UPDATED, now, C.INHIBITED, f"by {parent.id}")

    def _absorb_child(
        self, parent: Incident, child: Incident, evidence: Sequence[Anomaly], now: float
    ) -> None:
        if not parent.anomalies and evidence:
            parent.metric = trigger_of(evidence).metric
        parent.first_seen_ts = min(parent.first_seen_ts, child.first_seen_ts)
        self._add_anomalies(parent, evidence[-3:])
        self._journal.emit(parent, EventType.UPDATED, now, C.ABSORBED, child.id)

    def _refresh(self, parent: Incident, active: bool, now: float) -> None:
        if active and not parent.active:
            self._seen(parent, now, [])
        elif active:
            parent.last_seen_ts = now
        elif parent.active:
            self._go_quiet(parent, now)

    def _apply_silences(self, now: float) -> None:
        self.silences.prune(now)
        for inc, match in self.silences.changes(self._open.values(), now):
            if match is not None:
                self._journal.note(inc, now, "silenced", f"{match.id}: {match.comment}")
            else:
                self._journal.note(inc, now, "unsilenced", "silence ended or removed")

    def _resolve_quiet(self, now: float) -> None:
        horizon = now - self.config.clean_period_s
        for scope in SCOPES:
            for inc in self._of_scope(scope):
                quiet = inc.quiet_since_ts
                if not inc.active and quiet is not None and quiet <= horizon:
                    self._resolve(inc, now)

    def _resolve(self, inc: Incident, now: float) -> None:
        inc.status, inc.resolved_ts = Status.RESOLVED, now
        del self._open[slot(inc.key)]
        del self._by_scope[inc.scope][slot(inc.key)]
        self._recent[slot(inc.key)] = inc
        self._journal.emit(inc, EventType.RESOLVED, now, None, f"quiet since {inc.quiet_since_ts}")
        child_scope = Scope.APPLIANCE if inc.scope is Scope.SITE else Scope.SITE
        for child in self._by_scope[child_scope].values():
            if child.parent == inc.id:
                # Another open parent that counts it as a member keeps it inhibited.
                other = next(
                    (p for p in self._by_scope[inc.scope].values() if child.subject in p.members),
                    None,
                )
                if other is not None:
                    self._inhibit(child, other, now)
                else:
                    child.parent = None
                    detail = f"{inc.id} resolved"
                    self._journal.emit(child, EventType.UPDATED, now, C.RELEASED, detail)

    def _announce(self, now: float) -> None:
        for inc in self._open.values():
            if not inc.announced and not inc.silenced:
                inc.announced = True
                detail = f"flap {inc.flaps}" if inc.flaps else ""
                self._journal.emit(inc, EventType.OPENED, now, None, detail)
                if inc.scope is not Scope.FLEET and not inc.inhibited:
                    self._submit_triage(inc)

    def _forget_recent(self, now: float) -> None:
        horizon = now - self.config.hold_down_s
        for key in [k for k, inc in self._recent.items() if (inc.resolved_ts or 0) < horizon]:
            gone = self._recent.pop(key)
            self._saved_seen.pop(gone.id, None)

    def _flush(self, now: float) -> None:
        for inc in self._open.values():
            if inc.last_seen_ts - self._saved_seen.get(inc.id, 0.0) >= PERSIST_SEEN_EVERY_S:
                self._journal.seen(inc)
                self._saved_seen[inc.id] = inc.last_seen_ts
        for inc in self._journal.dirty_incidents():
            self._saved_seen[inc.id] = inc.last_seen_ts
        # The gauges move only when an incident changed or leaves its group wait.
        changed = self._journal.changed or self._any_waiting
        self._journal.flush()
        if changed:
            self._set_gauges(now)

    def _set_gauges(self, now: float) -> None:
        waiting = [self._waiting(i, now) for i in self._open.values()]
        self._any_waiting = any(waiting)
        self._journal.bus.set_open(open_counts(self._open.values(), waiting))

    def _submit_triage(self, inc: Incident) -> None:
        if self._triage is not None:
            site = inc.scope is Scope.SITE
            self._triage.submit(
                inc, self._view.site_appliances(inc.subject) if site else [inc.subject]
            )

    def _collect(self, now: float) -> int:
        done = self._triage.finished() if self._triage is not None else []
        for incident_id, signals in done:
            inc = self._find(incident_id)
            if inc is not None:
                inc.triage = tuple(signals)
                top = signals[0].line if signals else "no signal changed"
                self._journal.emit(inc, EventType.UPDATED, now, C.TRIAGED, top)
        return len(done)

    def _find(self, incident_id: str) -> Incident | None:
        for inc in (*self._open.values(), *self._recent.values()):
            if inc.id == incident_id:
                return inc
        return None

    def collect_triage(self) -> int:
        """Attach finished triage results now (rather than on the next tick); returns how many."""
        n = self._collect(self._clock())
        if self._journal.pending:
            self._journal.flush()
        return n

    async def wait_triage(self, timeout_s: float) -> int:
        """Wait for every triage in flight (at most `timeout_s`), then attach the results."""
        if self._triage is not None:
            await self._triage.wait(timeout_s)
        return self.collect_triage()

    # Alert incidents, taken in from Alertmanager (`cdnops.intake`). They are filed in
    # `_open` under their own key and never in `_by_scope`: the tick's quiet timer,
    # site and fleet correlation and inhibition are detection's; an alert incident stays
    # active while its alerts fire and resolves only when Alertmanager says so. Silences,
    # the group wait, announcing, triage and the store treat them like any other.
    # These return incident ids rather than copies: a notification may carry a thousand.

    def open_alert(
        self,
        key: Key,
        *,
        site: str,
        severity: Severity,
        labels: Mapping[str, str],
        started_ts: float | None,
        detail: str,
    ) -> tuple[str, bool]:
        """Tie a newly firing alert to the open incident of `key`, reopening one resolved
        within the hold-down or opening one; returns (its id, whether it is new or reopened).

        Call `commit_alerts` after a batch: it announces and writes.
        """
        if key.kind is not IncidentKind.ALERT:
            raise ValueError(f"open_alert takes alert keys, got {key}")
        now = self._clock()
        inc = self._open.get(key)
        if inc is not None:
            inc.last_seen_ts = now
            if severity is Severity.CRITICAL:
                inc.severity = Severity.CRITICAL
            self._journal.emit(inc, EventType.UPDATED, now, C.ABSORBED, detail)
            return inc.id, False
        inc = self._recent.pop(key, None)
        if inc is not None:
            inc.status, inc.resolved_ts, inc.reopened_ts = Status.OPEN, None, now
            inc.active, inc.quiet_since_ts, inc.last_seen_ts = True, None, now
            inc.flaps += 1
            inc.announced = False  # consumers saw it resolve: they get `opened` again
            self._journal.note(inc, now, "reopened", f"flap {inc.flaps}: {detail}")
        else:
            inc = Incident(
                id=f"inc-{uuid.uuid4().hex[:16]}",
                key=key,
                site=site,
                metric=key.family,
                severity=severity,
                opened_ts=now,
                first_seen_ts=min(started_ts or now, now),
                last_seen_ts=now,
                labels=dict(labels),
            )
            self._journal.note(inc, now, "opened", detail)
        self._open[key] = inc
        self._silence_alert(inc, now)
        return inc.id, True

    def alert_seen(self, key: Key) -> str | None:
        """A firing alert sent again: the open alert incident of `key` was seen now.

        Returns its id, or None when `key` has no open alert incident.
        """
        inc = self._open.get(key) if key.kind is IncidentKind.ALERT else None
        if inc is None:
            return None
        inc.last_seen_ts = self._clock()
        return inc.id

    def resolve_alert(self, key: Key, detail: str, *, firing: int = 0) -> str | None:
        """An alert of `key`'s incident resolved: resolve it unless `firing` others still fire.

        Returns the incident's id, or None when `key` has no open alert incident.
        """
        inc = self._open.get(key) if key.kind is IncidentKind.ALERT else None
        if inc is None:
            return None
        now = self._clock()
        if firing > 0:
            self._journal.note(inc, now, "alert resolved", f"{detail}; {firing} still firing")
            return inc.id
        inc.status, inc.resolved_ts = Status.RESOLVED, now
        inc.active, inc.quiet_since_ts = False, now
        del self._open[key]
        self._recent[key] = inc
        self._journal.emit(inc, EventType.RESOLVED, now, None, detail)
        return inc.id

    def find_alert(self, key: Key) -> str | None:
        """The id of `key`'s open alert incident, if there is one."""
        inc = self._open.get(key) if key.kind is IncidentKind.ALERT else None
        return inc.id if inc is not None else None

    def stale_alerts(self, seen_before_ts: float) -> list[Key]:
        """Keys of open alert incidents last seen before `seen_before_ts`."""
        return [
            k
            for k, i in self._open.items()
            if i.kind is IncidentKind.ALERT and i.last_seen_ts < seen_before_ts
        ]

    def open_alert_keys(self) -> dict[str, Key]:
        """Incident id -> key of every open alert incident."""
        return {i.id: k for k, i in self._open.items() if i.kind is IncidentKind.ALERT}

    def appliance_sites(self) -> dict[str, str]:
        """Appliance id -> site, as the last tick showed the inventory (empty before)."""
        view = self._view
        return {a: site for site in view.site_sizes for a in view.site_appliances(site)}

    def commit_alerts(self) -> None:
        """Announce alert incidents opened since the last call and write every change."""
        now = self._clock()
        self._announce(now)
        self._flush(now)

    def adopt_alerts(self) -> int:
        """File the alert incidents read from the store at start under their own keys.

        The start-up load files an appliance's incidents in one slot, and it files every
        incident where the tick's timers see it; this moves alert incidents out of there
        (and restores an incident one of them displaced). Call it once, before the first
        tick; returns the number of open alert incidents.
        """
        now = self._clock()
        known = {i.id: i for i in (*self._open.values(), *self._recent.values())}
        for table in (self._open, self._recent, *self._by_scope.values()):
            for k in [k for k, i in table.items() if i.kind is IncidentKind.ALERT]:
                del table[k]
        rows = [
            known.get(row.id) or from_row(row)
            for row in self._journal.store.load_incidents(
                resolved_since=now - self.config.hold_down_s
            )
        ]
        for inc in rows:
            open_ = inc.status is Status.OPEN
            if inc.kind is IncidentKind.ALERT:
                (self._open if open_ else self._recent)[inc.key] = inc
            elif open_ and slot(inc.key) not in self._open:
                self._add_open(inc)  # the first one stays, as at load
            self._saved_seen.setdefault(inc.id, inc.last_seen_ts)
        for inc in reversed(rows):  # the last one resolved stays, as at load
            if inc.kind is not IncidentKind.ALERT and inc.status is Status.RESOLVED:
                self._recent.setdefault(slot(inc.key), inc)
        self._set_gauges(now)
        return sum(1 for i in self._open.values() if i.kind is IncidentKind.ALERT)

    def _silence_alert(self, inc: Incident, now: float) -> None:
        match = self.silences.match(inc, now) if len(self.silences) else None
        inc.silenced_by = match.id if match is not None else None
        if match is not None:
            self._journal.note(inc, now, "silenced", f"{match.id}: {match.comment}")
