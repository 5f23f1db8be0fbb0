"""Alertmanager's webhook in, alert incidents out: one incident per alert key, resolved by
Alertmanager, remembered by fingerprint in the store."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cdnops.config.intake import AlertmanagerConfig
from cdnops.incidents.tracker import IncidentTracker
from cdnops.intake.mapping import Skip, Target, selected, target_of
from cdnops.intake.webhook import Alert, IntakeError, Notification, parse_notification
from cdnops.store.db import Store

__all__ = ["AlertmanagerIntake", "IntakeError", "IntakeResult"]

log = logging.getLogger("cdnops.intake")

MAX_WARNED = 10_000  # unmappable alerts remembered so each is logged once


@dataclass(slots=True)
class IntakeResult:
    """What one notification did, per alert: the answer to Alertmanager (and to operators)."""

    received: int = 0
    opened: list[str] = field(default_factory=list)  # incidents opened or reopened
    updated: list[str] = field(default_factory=list)  # open incidents the alert was already in
    resolved: list[str] = field(default_factory=list)  # incidents resolved
    ignored: int = 0  # left out by `match`, or resolved alerts the daemon never had
    skipped: list[dict[str, str]] = field(default_factory=list)  # taken but not mappable
    truncated: int = 0  # alerts Alertmanager left out of the notification

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
        self._firing: dict[str, str] = {}  # fingerprint -> incident id
        self._members: dict[str, set[str]] = {}  # incident id -> fingerprints firing in it
        for row in store.alerts(status="firing"):
            self._bind(row.fingerprint, row.incident_id)
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
                "alertmanager receiver %r left out %d alerts of group %s (its max_alerts)",
                note.receiver, note.truncated, note.group_key,
            )  # fmt: skip
        self._sites = None
        rows: list[tuple[Alert, str, str]] = []  # (alert, incident id, status) to store
        for alert in note.alerts:
            if alert.firing:
                self._fire(alert, result, rows)
            else:
                self._resolve(alert, result, rows)
        self._tracker.commit_alerts()
        now = self._clock()
        with self._store.transaction():
            for alert, incident_id, status in rows:
                self._store.put_alert(alert.fingerprint, incident_id, status, now, alert.to_json())
        self._log(note, result)
        return result

    def _fire(self, alert: Alert, result: IntakeResult, rows: list[tuple[Alert, str, str]]) -> None:
        known = self._firing.get(alert.fingerprint)
        if known is not None and self._tracker.alert_seen(known) is not None:
            result.updated.append(known)
            return
        if not selected(self.config, alert.labels):
            result.ignored += 1
            return
        try:
            target = target_of(self.config, alert, self._site_of)
        except Skip as exc:
            result.skipped.append({"fingerprint": alert.fingerprint, "reason": str(exc)})
            return
        inc, new = self._tracker.open_alert(
            target.key,
            site=target.site,
            severity=target.severity,
            labels=target.labels,
            started_ts=target.started_ts,
            detail=_detail(alert, target),
        )
        (result.opened if new else result.updated).append(inc.id)
        self._bind(alert.fingerprint, inc.id)
        rows.append((alert, inc.id, "firing"))

    def _resolve(
        self, alert: Alert, result: IntakeResult, rows: list[tuple[Alert, str, str]]
    ) -> None:
        incident_id = self._unbind(alert.fingerprint) or self._orphan(alert)
        if incident_id is None:
            result.ignored += 1  # never taken, or resolved already
            return
        still = len(self._members.get(incident_id, ()))
        detail = f"alert {alert.fingerprint} resolved"
        inc = self._tracker.resolve_alert(incident_id, detail, firing=still)
        if inc is not None and still == 0:
            result.resolved.append(inc.id)
        elif inc is not None:
            result.updated.append(inc.id)
        rows.append((alert, incident_id, "resolved"))

    def _orphan(self, alert: Alert) -> str | None:
        """The open incident of a resolved alert the alerts table does not hold (a crash
        between the two writes): the incident of its key, if no other alert fires in it."""
        if not selected(self.config, alert.labels):
            return None
        try:
            target = target_of(self.config, alert, self._site_of)
        except Skip:
            return None
        inc = self._tracker.find_alert(target.key)
        if inc is None or self._members.get(inc.id):
            return None
        return inc.id

    def _bind(self, fingerprint: str, incident_id: str) -> None:
        self._unbind(fingerprint)
        self._firing[fingerprint] = incident_id
        self._members.setdefault(incident_id, set()).add(fingerprint)

    def _unbind(self, fingerprint: str) -> str | None:
        incident_id = self._firing.pop(fingerprint, None)
        if incident_id is not None:
            members = self._members[incident_id]
            members.discard(fingerprint)
            if not members:
                del self._members[incident_id]
        return incident_id

    def _site_of(self, appliance: str) -> str | None:
        if self._sites is None:
            self._sites = self._tracker.appliance_sites()
        return self._sites.get(appliance)

    def _log(self, note: Notification, result: IntakeResult) -> None:
        if result.opened or result.resolved or result.skipped:
            log.info(
                "alertmanager notification: receiver=%s alerts=%d opened=%d updated=%d "
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
                    "alertmanager alert %s not taken: %s", skip["fingerprint"], skip["reason"]
                )


def _detail(alert: Alert, target: Target) -> str:
    """The timeline line of an alert joining an incident: fingerprint and summary."""
    detail = f"alert {alert.fingerprint}"
    return f"{detail}: {target.summary}" if target.summary else detail
