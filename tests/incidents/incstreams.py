"""Synthetic fleets, frames and detection results for the incident tests."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from prometheus_client import CollectorRegistry

from cdnops.config.incidents import IncidentsConfig
from cdnops.incidents.events import EventBus, IncidentEvent
from cdnops.incidents.model import Incident, IncidentKind, Key, Scope, Severity
from cdnops.incidents.tracker import IncidentTracker
from cdnops.model import (
    CONTRACT_METRICS,
    Anomaly,
    Appliance,
    ApplianceState,
    DetectionResult,
    Detector,
    FleetFrame,
    Inventory,
    PollFailure,
)
from cdnops.store.db import Store

T0 = 1_764_547_200.0
TICK_S = 10.0
LATENCY = "origin_latency_p99_ms"


def make_inventory(sites: Mapping[str, int], labels: Mapping[str, str] | None = None) -> Inventory:
    """`sites` maps a site to its number of appliances, named `<site>-a00`, `<site>-a01`..."""
    return Inventory(
        tuple(
            Appliance(
                f"{site}-a{i:02d}", site, f"http://127.0.0.1:1/a/{site}-a{i:02d}", labels or {}
            )
            for site, count in sites.items()
            for i in range(count)
        )
    )


def make_frame(
    inv: Inventory,
    ts: float,
    seq: int,
    states: Mapping[str, ApplianceState] | None = None,
    values: np.ndarray | None = None,
) -> FleetFrame:
    """A frame with every appliance serving (unless `states` says otherwise)."""
    n, m = len(inv.appliances), len(CONTRACT_METRICS)
    sites = inv.sites
    state = np.full(n, ApplianceState.SERVING, np.int8)
    for i, a in enumerate(inv.appliances):
        if states and a.id in states:
            state[i] = states[a.id]
    vals = np.ones((n, m)) if values is None else values
    return FleetFrame(
        ts=ts,
        seq=seq,
        inventory=inv,
        site_index=np.array([sites.index(a.site) for a in inv.appliances], np.int32),
        sites=sites,
        metrics=CONTRACT_METRICS,
        values=vals,
        valid=np.isfinite(vals),
        failure=np.full(n, PollFailure.OK, np.int8),
        state=state,
        uptime_s=np.full(n, 1000.0),
        services=(),
        service_status=np.zeros((n, 0), np.int8),
    )


def anomaly(
    appliance: str, metric: str = LATENCY, since: float = T0, score: float = 0.8
) -> Anomaly:
    """An anomaly on `appliance` (its site is the part of the id before the first dash)."""
    detector = Detector.REACHABILITY if metric == "reachability" else Detector.TEMPORAL
    return Anomaly(
        appliance, appliance.split("-")[0], metric, detector, 200.0, 80.0, score, since, "test"
    )


class Clock:
    """A settable clock."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


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
