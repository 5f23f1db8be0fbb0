"""A tracker and an intake on a real store, fed ticks and Alertmanager notifications."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fleetkit import ActiveAnomalies, Clock, make_frame, make_inventory
from prometheus_client import CollectorRegistry

from cdnops.config.incidents import IncidentsConfig, TriageConfig
from cdnops.config.intake import AlertmanagerConfig
from cdnops.incidents.events import EventBus, IncidentEvent
from cdnops.incidents.model import Incident
from cdnops.incidents.tracker import IncidentTracker
from cdnops.intake.alertmanager import AlertmanagerIntake, IntakeResult
from cdnops.model import (
    Anomaly,
    Inventory,
)
from cdnops.store.db import Store

TICK_S = 10.0
STARTS_AT = "2025-11-30T23:58:00.123456789Z"  # Go writes nanoseconds
UNSET = "0001-01-01T00:00:00Z"  # Go's zero time: Alertmanager's "not set"


def alert(
    name: str = "EdgeDown",
    status: str = "firing",
    fingerprint: str | None = "fp-1",
    **labels: str,
) -> dict[str, Any]:
    """One alert as Alertmanager's webhook carries it."""
    out: dict[str, Any] = {
        "status": status,
        "labels": {"alertname": name, **labels},
        "annotations": {"summary": f"{name} fired"},
        "startsAt": STARTS_AT,
        "endsAt": UNSET if status == "firing" else "2025-12-01T00:05:00Z",
        "generatorURL": "http://prometheus.example:9090/graph",
    }
    if fingerprint is not None:
        out["fingerprint"] = fingerprint
    return out


def notification(*alerts: dict[str, Any], truncated: int = 0) -> dict[str, Any]:
    """A version 4 webhook body around `alerts`."""
    firing = any(a["status"] == "firing" for a in alerts)
    return {
        "version": "4",
        "groupKey": '{}:{alertname="EdgeDown"}',
        "truncatedAlerts": truncated,
        "status": "firing" if firing else "resolved",
        "receiver": "cdnops",
        "groupLabels": {},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.example:9093",
        "alerts": list(alerts),
    }


@dataclass
class Rig:
    """Store, bus, tracker and intake, restartable on the same store file."""

    path: Path
    inv: Inventory = field(default_factory=lambda: make_inventory({"sea01": 6, "fra02": 6}))
    config: IncidentsConfig = field(
        default_factory=lambda: IncidentsConfig(
            clean_period_s=60,
            hold_down_s=300,
            group_wait_s=20,
            triage=TriageConfig(enabled=False),
        )
    )
    intake_config: AlertmanagerConfig = field(default_factory=AlertmanagerConfig)
    clock: Clock = field(default_factory=Clock)
    events: list[IncidentEvent] = field(default_factory=list)
    seq: int = 0
    _active: ActiveAnomalies = field(default_factory=ActiveAnomalies)

    def __post_init__(self) -> None:
        self.start()

    def start(self) -> None:
        """Open the store and build the tracker and the intake (as the daemon does)."""
        self.store = Store(self.path)
        self.registry = CollectorRegistry()
        self.bus = EventBus(self.registry)
        self.bus.subscribe(self.events.append)
        self.tracker = IncidentTracker(self.config, self.store, self.bus, clock=self.clock)
        self.intake = AlertmanagerIntake(self.intake_config, self.tracker, self.store, self.clock)

    def close(self) -> None:
        self.tracker.close()
        self.store.close()

    def restart(self) -> None:
        """Stop and start again on the same store file."""
        self.close()
        self.start()

    def tick(self, active: Iterable[Anomaly] = ()) -> None:
        """Advance the clock one tick and feed the tracker a frame and a detection result."""
        self.seq += 1
        self.clock.now += TICK_S
        f = make_frame(self.inv, self.clock.now, self.seq)
        result = self._active.result(f, active)
        self.tracker.update(f, result)

    def ticks(self, count: int, active: Iterable[Anomaly] = ()) -> None:
        anomalies = list(active)
        for _ in range(count):
            self.tick(anomalies)

    def send(self, *alerts: dict[str, Any]) -> IntakeResult:
        """Deliver one notification with these alerts."""
        return self.intake.ingest(notification(*alerts))

    def open(self) -> list[Incident]:
        return self.tracker.open_incidents()

    def alert_incidents(self) -> list[Incident]:
        return [i for i in self.open() if str(i.kind) == "alert"]

    def names(self) -> list[str]:
        """Event names in order: `opened`, `resolved`, ..."""
        return [e.name for e in self.events]
