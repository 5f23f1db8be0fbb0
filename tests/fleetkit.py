"""Small fleets for tests: inventories, fleet frames, anomalies and a clock the test moves.

Shared by the test folders (pytest puts `tests/` on the path through its conftest).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np

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

T0 = 1_764_547_200.0
LATENCY = "origin_latency_p99_ms"


class Clock:
    """A settable clock."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


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
    """A frame with every appliance serving (unless `states` says otherwise), no services."""
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


def build_frame(
    appliances: Sequence[tuple[str, str]],
    *,
    metrics: Sequence[str] = CONTRACT_METRICS,
    seq: int = 1,
    ts: float = T0,
    values: np.ndarray | None = None,
    valid: np.ndarray | None = None,
    failure: Sequence[int] | None = None,
    state: Sequence[int] | None = None,
) -> FleetFrame:
    """A FleetFrame for (id, site) pairs with an `nginx` service running; values default
    to row*100 + column."""
    n, m = len(appliances), len(metrics)
    inventory = Inventory(
        tuple(Appliance(id=a, site=s, url=f"http://127.0.0.1:1/a/{a}") for a, s in appliances)
    )
    sites = inventory.sites
    if values is None:
        values = np.arange(n, dtype=np.float64)[:, None] * 100 + np.arange(m, dtype=np.float64)
    if valid is None:
        valid = np.ones((n, m), dtype=np.bool_)
    values = np.where(valid, values, np.nan)
    return FleetFrame(
        ts=ts,
        seq=seq,
        inventory=inventory,
        site_index=np.array([sites.index(s) for _, s in appliances], dtype=np.int32),
        sites=sites,
        metrics=tuple(metrics),
        values=values,
        valid=valid,
        failure=np.array(failure if failure is not None else [0] * n, dtype=np.int8),
        state=np.array(state if state is not None else [ApplianceState.SERVING] * n, dtype=np.int8),
        uptime_s=np.full(n, 1000.0),
        services=("nginx",),
        service_status=np.ones((n, 1), dtype=np.int8),
    )


def anomaly(
    appliance: str, metric: str = LATENCY, since: float = T0, score: float = 0.8
) -> Anomaly:
    """An anomaly on `appliance` (its site is the part of the id before the first dash)."""
    detector = Detector.REACHABILITY if metric == "reachability" else Detector.TEMPORAL
    return Anomaly(
        appliance, appliance.split("-")[0], metric, detector, 200.0, 80.0, score, since, "test"
    )


class ActiveAnomalies:
    """The anomalies active tick after tick, turned into each tick's DetectionResult the way
    detection reports them: an anomaly that stays active keeps its first object (and
    `since_ts`), and `entered` / `cleared` are the differences from the tick before."""

    def __init__(self) -> None:
        self.active: dict[tuple[str, str], Anomaly] = {}

    def result(
        self, frame: FleetFrame, active: Iterable[Anomaly], firing: Iterable[str] = ()
    ) -> DetectionResult:
        """This tick's result; the appliances of `active` and of `firing` fire in it."""
        now = {(a.appliance, a.metric): a for a in active}
        merged = {k: self.active.get(k, a) for k, a in now.items()}
        entered = tuple(a for k, a in merged.items() if k not in self.active)
        cleared = tuple(a for k, a in self.active.items() if k not in merged)
        self.active = merged
        hot = {a.appliance for a in merged.values()} | set(firing)
        return DetectionResult(
            frame.ts,
            frame.seq,
            np.zeros(frame.values.shape),
            tuple(merged.values()),
            entered,
            cleared,
            firing=np.array([a.id in hot for a in frame.inventory.appliances], dtype=bool),
        )
