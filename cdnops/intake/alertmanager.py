"""Alertmanager's webhook in, alert incidents out: one incident per alert key, resolved by
Alertmanager, remembered by fingerprint in the store."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cdnops.config.intake import AlertmanagerConfig
from cdnops.incidents.model import Key
from cdnops.incidents.tracker import IncidentTracker
from cdnops.intake.mapping import Skip, Target, selected, target_of
from cdnops.intake.webhook import Alert, IntakeError, Notification, parse_notification
from cdnops.store.db import Store

__all__ = ["AlertmanagerIntake", "IntakeError", "IntakeResult"]

log = logging.getLogger("cdnops.intake")

MAX_WARNED = 10_000  # unmappable alerts remembered so each is logged once

# A row of the alerts table to write: fingerprint, incident id, status, body.
_Row = tuple[str, str, str, dict[str, Any]]


_RANK = {"updated": 0, "opened": 1, "resolved": 2}


@dataclass(slots=True)
class IntakeResult:
    """What one notification did: the answer to Alertmanager (and to operators).

    Each incident is listed once, under the last thing that happened to it: `resolved`
    over `opened` over `updated`.
    """

    received: int = 0
    ignored: int = 0  # left out by `match`, or resolved alerts the daemon never had
    skipped: list[dict[str, str]] = field(default_factory=list)  # taken but not mappable
    truncated: int = 0  # alerts Alertmanager left out of the notification
    _outcomes: dict[str, str] = field(default_factory=dict)  # incident id -> outcome

    def note(self, outcome: str, incident_id: str) -> None:
        """Record that an incident was `opened` (or reopened), `updated` or `resolved`."""
        before = self._outcomes.get(incident_id)
        if before is None or _RANK[outcome] > _RANK[before]:
            self._outcomes[incident_id] = outcome

    def _ids(self, outcome: str) -> list[str]:
        return [i for i, o in self._outcomes.items() if o == outcome]

    @property
    def opened(self) -> list[str]:
        """Incidents a firing alert opened or reopened."""
        return self._ids("opened")

    @property
    def updated(self) -> list[str]:
        """Open incidents a firing alert was already in or joined, or one of several resolved."""
        return self._ids("updated")

    @property
    def resolved(self) -> list[str]:
        """Incidents resolved by their last alert."""
        return self._ids("resolved")

    def to_json(self) -> dict[str, Any]:
        """The result as JSON-ready data."""
        return {
            "received": self.received,
            "opened": self.opened,
            "updated": self.updated,
            "resolved": self.resolved,
            "ignored": self.ignored,
            "skipped": self.skipped,
            "truncated": self.truncated,
        }


class AlertmanagerIntake:
    """Turns webhook notifications into alert incidents on the tracker.

    An alert is known by its fingerprint. A firing alert joins the open incident of
    its key (scope, subject, `alert`, alertname), so the same alert sent again, or two
    alerts of one name on one appliance, are one incident; it resolves when the last
    of its alerts resolves. Which incident each firing alert is in is kept in the
    store's `alerts` table, so a restart forgets nothing.

    `ingest` runs on the event loop's thread (it writes the store).
    """

    def __init__(
        self,
        config: AlertmanagerConfig,
        tracker: IncidentTracker,
        store: Store,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self._tracker = tracker
        self._store = store
        self._clock = clock
        tracker.adopt_alerts()
        self._firing: dict[str, Key] = {}  # fingerprint -> the key of its incident
        self._members: dict[Key, set[str]] = {}  # key -> fingerprints firing in its incident
        keys = tracker.open_alert_keys()
        for row in store.alerts(status="firing"):
            if (key := keys.get(row.incident_id)) is not None:
                self._bind(row.fingerprint, key)
        self._sites: dict[str, str] | None = None  # appliance -> site, built per request
        self._warned: set[str] = set()  # fingerprints of unmappable alerts, logged once

    def reload(self, config: AlertmanagerConfig) -> None:
        """Map later notifications with a reloaded config (alerts already in stay as they are)."""
        self.config = config

    def ingest(self, payload: object) -> IntakeResult:
        """Take in one notification; raises IntakeError when it is not a version 4 webhook.

        Incidents are written before the alerts table, and both before returning, so an
        answer of 200 means the notification is in the store.
        """
        note = parse_notification(payload, max_alerts=self.config.max_alerts)
        result = IntakeResult(received=len(note.alerts), truncated=note.truncated)
        if note.truncated:
            log.warning(
                "alertmanager receiver %r left out %d alerts of group %r (its max_alerts)",
                note.receiver, note.truncated, note.group_key,
            )  # fmt: skip
        self._sites = None
        rows: list[_Row] = []  # put_alert's, but the time
        for alert in note.alerts:
            if alert.firing:
                self._fire(alert, result, rows)
            else:
                self._resolve(alert, result, rows)
        self._expire(result, rows)
        self._commit(rows)
        self._log(note, result)
        return result

    def expire(self) -> list[str]:
        """Resolve the alert incidents none of whose alerts Alertmanager sent within
        `expire_after_s` (a resolved notification it could not deliver); returns their ids.

        `ingest` does this too; calling it on a timer covers a quiet Alertmanager.
        """
        result = IntakeResult()
        rows: list[_Row] = []
        self._expire(result, rows)
        if result.resolved:
            self._commit(rows)
            log.info("alertmanager: %d alert incidents expired", len(result.resolved))
        return result.resolved

    def _expire(self, result: IntakeResult, rows: list[_Row]) -> None:
        after_s = self.config.expire_after_s
        if after_s is None:
            return
        for key in self._tracker.stale_alerts(self._clock() - after_s):
            detail = f"no alert of it sent for {after_s:g}s (api.alertmanager.expire_after_s)"
            incident_id = self._tracker.resolve_alert(key, detail)
            if incident_id is None:
                continue
            result.note("resolved", incident_id)
            for fingerprint in list(self._members.get(key, ())):
                self._unbind(fingerprint)
                rows.append((fingerprint, incident_id, "resolved", {"expired": True}))

    def _commit(self, rows: list[_Row]) -> None:
        """Write the incidents, then the alerts (a restart finds both)."""
        self._tracker.commit_alerts()
        now = self._clock()
        with self._store.transaction():
            for fingerprint, incident_id, status, body in rows:
                self._store.put_alert(fingerprint, incident_id, status, now, body)

    def _fire(self, alert: Alert, result: IntakeResult, rows: list[_Row]) -> None:
        known = self._firing.get(alert.fingerprint)
        if known is not None and (seen := self._tracker.alert_seen(known)) is not None:
            result.note("updated", seen)
            return
        if not selected(self.config, alert.labels):
            result.ignored += 1
            return
        try:
            target = target_of(self.config, alert, self._site_of)
        except Skip as exc:
            result.skipped.append({"fingerprint": alert.fingerprint, "reason": str(exc)})
            return
        incident_id, new = self._tracker.open_alert(
            target.key,
            site=target.site,
            severity=target.severity,
            labels=target.labels,
            started_ts=target.started_ts,
            detail=_detail(alert, target),
        )
        result.note("opened" if new else "updated", incident_id)
        self._bind(alert.fingerprint, target.key)
        rows.append((alert.fingerprint, incident_id, "firing", alert.to_json()))

    def _resolve(self, alert: Alert, result: IntakeResult, rows: list[_Row]) -> None:
        key = self._unbind(alert.fingerprint) or self._orphan(alert)
        if key is None:
            result.ignored += 1  # never taken, or resolved already
            return
        still = len(self._members.get(key, ()))
        detail = f"alert {alert.fingerprint} resolved"
        incident_id = self._tracker.resolve_alert(key, detail, firing=still)
        if incident_id is None:
            result.ignored += 1  # its incident is no longer open
            return
        result.note("updated" if still else "resolved", incident_id)
        rows.append((alert.fingerprint, incident_id, "resolved", alert.to_json()))

    def _orphan(self, alert: Alert) -> Key | None:
        """The key of a resolved alert the alerts table does not hold (the daemon stopped
        between the two writes), if its incident is open and no other alert fires in it."""
        if not selected(self.config, alert.labels):
            return None
        try:
            target = target_of(self.config, alert, self._site_of)
        except Skip:
            return None
        if self._tracker.find_alert(target.key) is None or self._members.get(target.key):
            return None
        return target.key

    def _bind(self, fingerprint: str, key: Key) -> None:
        self._unbind(fingerprint)
        self._firing[fingerprint] = key
        self._members.setdefault(key, set()).add(fingerprint)

    def _unbind(self, fingerprint: str) -> Key | None:
        key = self._firing.pop(fingerprint, None)
        if key is not None:
            members = self._members[key]
            members.discard(fingerprint)
            if not members:
                del self._members[key]
        return key

    def _site_of(self, appliance: str) -> str | None:
        if self._sites is None:
            self._sites = self._tracker.appliance_sites()
        return self._sites.get(appliance)

    def _log(self, note: Notification, result: IntakeResult) -> None:
        if result.opened or result.resolved or result.skipped:
            log.info(
                "alertmanager notification: receiver=%r alerts=%d opened=%d updated=%d "
                "resolved=%d ignored=%d skipped=%d",
                note.receiver, result.received, len(result.opened), len(result.updated),
                len(result.resolved), result.ignored, len(result.skipped),
            )  # fmt: skip
        if len(self._warned) > MAX_WARNED:
            self._warned.clear()
        for skip in result.skipped:
            if skip["fingerprint"] not in self._warned:  # Alertmanager sends it again and again
                self._warned.add(skip["fingerprint"])
                log.warning(
                    "alertmanager alert %r not taken: %s", skip["fingerprint"], skip["reason"]
                )


def _detail(alert: Alert, target: Target) -> str:
    """The timeline line of an alert joining an incident: fingerprint and summary."""
    detail = f"alert {alert.fingerprint}"
    return f"{detail}: {target.summary}" if target.summary else detail
