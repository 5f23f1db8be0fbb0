"""Synthetic fleets, frames and detection results for the incident tests."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from fleetkit import LATENCY, T0, Clock, make_frame
from prometheus_client import CollectorRegistry

from cdnops.config.incidents import IncidentsConfig
from cdnops.incidents.events import EventBus, IncidentEvent
from cdnops.incidents.model import Incident, IncidentKind, Key, Scope, Severity
from cdnops.incidents.tracker import IncidentTracker
from cdnops.model import (
    Anomaly,
    ApplianceState,
    DetectionResult,
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
    _active: dict[tuple[str, str], Anomaly] = field(default_factory=dict)

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
        now_active = {(a.appliance, a.metric): a for a in active}
        # An anomaly that stays active keeps its first object (and `since_ts`).
        merged = {k: self._active.get(k, a) for k, a in now_active.items()}
        entered = tuple(a for k, a in merged.items() if k not in self._active)
        cleared = tuple(a for k, a in self._active.items() if k not in merged)
        self._active = merged
        frame = make_frame(self.inv, self.clock.now, self.seq, states, values)
        n, m = frame.values.shape
        hot = {a.appliance for a in merged.values()} | set(firing)
        result = DetectionResult(
            self.clock.now,
            self.seq,
            np.zeros((n, m)),
            tuple(merged.values()),
            entered,
            cleared,
            firing=np.array([a.id in hot for a in self.inv.appliances], dtype=bool),
        )
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
