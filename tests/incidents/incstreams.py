"""Synthetic fleets, frames and detection results for the incident tests."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from fleetkit import LATENCY, T0, ActiveAnomalies, Clock, make_frame
from prometheus_client import CollectorRegistry

from cdnops.config.incidents import IncidentsConfig
from cdnops.incidents.events import EventBus, IncidentEvent
from cdnops.incidents.model import Incident, IncidentKind, Key, Scope, Severity
from cdnops.incidents.tracker import IncidentTracker
from cdnops.model import (
    Anomaly,
    ApplianceState,
    Inventory,
)
from cdnops.store.db import Store

TICK_S = 10.0


@dataclass
class Harness:
    """A tracker on a real store, fed one tick at a time with the anomalies active then."""

    inv: Inventory
    store_path: Path
    config: IncidentsConfig = field(default_factory=IncidentsConfig)
    clock: Clock = field(default_factory=Clock)
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    events: list[IncidentEvent] = field(default_factory=list)
    seq: int = 0
    _active: ActiveAnomalies = field(default_factory=ActiveAnomalies)

    def __post_init__(self) -> None:
        self.store = Store(self.store_path)
        self.bus = EventBus(self.registry)
        self.bus.subscribe(self.events.append)
        self.tracker = IncidentTracker(self.config, self.store, self.bus, clock=self.clock)

    def close(self) -> None:
        self.tracker.close()
        self.store.close()

    def tick(
        self,
        active: Iterable[Anomaly] = (),
        states: Mapping[str, ApplianceState] | None = None,
        values: np.ndarray | None = None,
        firing: Iterable[str] = (),
    ) -> None:
        """Advance the clock by one tick and feed the tracker one frame and result.

        The appliances of `active` anomalies fire this tick, and so do those of `firing`
        (evidence detection has not confirmed yet)."""
        self.seq += 1
        self.clock.now += TICK_S
        frame = make_frame(self.inv, self.clock.now, self.seq, states, values)
        result = self._active.result(frame, active, firing)
        self.tracker.update(frame, result)

    def ticks(self, count: int, active: Sequence[Anomaly] = ()) -> None:
        for _ in range(count):
            self.tick(active)

    def names(self) -> list[str]:
        """Event names in order: `opened`, `inhibited`, ..."""
        return [e.name for e in self.events]


def make_incident(scope: Scope = Scope.APPLIANCE, subject: str = "sea01-a01") -> Incident:
    """A latency incident, as the tracker would open it."""
    return Incident(
        id="inc-1",
        key=Key(scope, subject, IncidentKind.METRIC, LATENCY),
        site="sea01",
        metric=LATENCY,
        severity=Severity.WARNING,
        opened_ts=T0,
        first_seen_ts=T0,
        last_seen_ts=T0,
        labels={"model": "storage-v3"},
    )


@contextmanager
def propagating_logs() -> Iterator[None]:
    """Let `cdnops.*` records reach pytest's caplog (the daemon's log setup stops them)."""
    logger = logging.getLogger("cdnops")
    old = logger.propagate
    logger.propagate = True
    try:
        yield
    finally:
        logger.propagate = old
