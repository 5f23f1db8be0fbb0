"""The simulation core without HTTP: clock, fleet, faults, actions and ground truth."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np

from cdnops.sim.actions import ActionDesk
from cdnops.sim.effects import Fault, FaultBook, FaultEvent, RequestMode
from cdnops.sim.faults import SITE_ONLY_KINDS, FaultSpec
from cdnops.sim.fleet import Fleet
from cdnops.sim.topology import SimSpec, Topology, build_topology
from cdnops.sim.truth import TruthLog

STEP_S = 0.1  # the fleet model is advanced at most this often (real seconds)


class SimClock:
    """Simulated Unix time: starts at the wall clock, runs `speed` times faster.

    `skip` jumps it forward, so tests can see minutes of simulated time pass at once.
    """

    def __init__(self, speed: float, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.speed = speed
        self.monotonic = monotonic
        self._real0 = monotonic()
        self._wall0 = time.time()
        self.offset_s = 0.0

    def real(self) -> float:
        """Monotonic real seconds (the event loop's clock)."""
        return self.monotonic()

    def sim(self, real: float | None = None) -> float:
        """Simulated Unix seconds at monotonic `real` (now if None)."""
        real = self.monotonic() if real is None else real
        return self._wall0 + (real - self._real0) * self.speed + self.offset_s

    def skip(self, sim_s: float) -> None:
        """Move simulated time forward by `sim_s` seconds."""
        self.offset_s += sim_s


class TargetError(ValueError):
    """A fault names an appliance or site the fleet does not have, or the wrong kind of target."""


class Engine:
    """Owns every piece of simulation state; the HTTP server only reads and routes."""

    def __init__(self, spec: SimSpec, truth: TruthLog) -> None:
        self.spec = spec
        self.topology: Topology = build_topology(spec)
        self.clock = SimClock(spec.speed)
        self.start_sim = self.clock.sim()
        self.fleet = Fleet(self.topology, seed=spec.seed, sim_now=self.start_sim)
        self.faults = FaultBook()
        self.truth = truth
        self.actions = ActionDesk(self)
        self.modes: dict[int, RequestMode] = {}
        self.down: set[int] = set()
        self._last_real = -math.inf
        self.refresh(force=True)

    def refresh(self, *, force: bool = False) -> float:
        """Advance the model if it is older than STEP_S (or `force`); returns sim now."""
        clock = self.clock
        real = clock.monotonic()
        if not force and real - self._last_real < STEP_S:
            return clock.sim(real)  # the hot path: one clock read, no model work
        sim = clock.sim(real)
        self._last_real = real
        events = self.faults.tick(sim)
        for event in events:
            self._record(event, sim)
        if events:
            self.modes = self.faults.request_modes()
        self.fleet.step(sim, real, self.faults.effects(self.fleet.n, sim))
        return sim

    def check_target(self, spec: FaultSpec) -> np.ndarray:
        """The rows a fault affects.

        Raises:
            TargetError: unknown target, or an appliance where a site is required.
        """
        rows = self.topology.rows_for(spec.target)
        if rows is None:
            raise TargetError(f"unknown appliance or site {spec.target!r}")
        if spec.kind in SITE_ONLY_KINDS and spec.target not in self.topology.site_rows:
            raise TargetError(f"{spec.kind} needs a site as target, got {spec.target!r}")
        return rows

    def inject(self, spec: FaultSpec, *, from_start: bool = False) -> Fault:
        """Add a fault; `at_s` counts from the simulator's start or from now."""
        rows = self.check_target(spec)
        base = self.start_sim if from_start else self.clock.sim()
        fault = self.faults.add(spec, rows, base + spec.at_s)
        self.refresh(force=True)
        return fault

    def clear(self, fault_id: str) -> Fault:
        """End a fault now.

        Raises:
            KeyError: no fault with that id.
        """
        fault = self.faults.faults[fault_id]
        sim = self.clock.sim()
        if self.faults.clear(fault):
            self._record(FaultEvent("fault_cleared", fault, fault.rows), sim)
            self.modes = self.faults.request_modes()
            self.refresh(force=True)
        return fault

    def fault_dict(self, fault: Fault) -> dict[str, object]:
        """A fault as the control API lists it."""
        return {
            "fault_id": fault.id,
            "status": fault.status.value,
            "starts_at_sim": round(fault.start_sim, 3),
            "appliances": self.ids(fault.rows),
            "live": self.ids(fault.live_rows()),
            **fault.spec.as_dict(),
        }

    def ids(self, rows: np.ndarray) -> list[str]:
        """Appliance ids of rows."""
        ids = self.topology.ids
        return [ids[r] for r in rows.tolist()]

    def _record(self, event: FaultEvent, sim: float) -> None:
        spec = event.fault.spec
        self.truth.add(
            event.event,
            sim,
            fault_id=event.fault.id,
            kind=spec.kind,
            target=spec.target,
            appliances=self.ids(event.rows),
            params=spec.as_dict()["params"],
            duration_s=spec.duration_s,
        )
