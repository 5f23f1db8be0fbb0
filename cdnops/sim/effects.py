"""Injected faults at run time and what they do to the fleet's metrics and answers."""

from __future__ import annotations

import enum
import itertools
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from cdnops.sim.faults import SERVICES, FaultSpec

Rows = npt.NDArray[np.intp]
Floats = npt.NDArray[np.float64]

# Internal service codes, rendered per service by the health body (bgp has its own words).
SVC_OK, SVC_DEGRADED, SVC_FAILED, SVC_STOPPED = 0, 1, 2, 3
DISK_FAILURE_TAU_S = 600.0  # a dying disk gets worse over about ten minutes

# What a flapping metric reads in its abnormal half-period, unless `value` is given.
FLAP_VALUES: dict[str, float] = {
    "cpu_util": 0.97,
    "mem_util": 0.96,
    "egress_gbps": 2.0,
    "active_connections": 1500.0,
    "cache_hit_ratio": 0.35,
    "http_5xx_ratio": 0.15,
    "origin_latency_p99_ms": 1800.0,
    "tcp_retransmit_ratio": 0.07,
    "temperature_c": 91.0,
}


class FaultStatus(enum.StrEnum):
    """Where a fault is in its life."""

    PENDING = "pending"  # its `at_s` has not come yet
    ACTIVE = "active"  # affecting at least one appliance
    FIXED = "fixed"  # every affected appliance was repaired by an action
    CLEARED = "cleared"  # its duration ended or it was deleted


@dataclass(eq=False)
class Fault:
    """One injected fault; `live[k]` says whether it still affects appliance `rows[k]`."""

    id: str
    spec: FaultSpec
    rows: Rows
    start_sim: float
    status: FaultStatus = FaultStatus.PENDING
    live: npt.NDArray[np.bool_] = field(init=False)
    recur_at: Floats = field(init=False)

    def __post_init__(self) -> None:
        self.live = np.zeros(len(self.rows), dtype=np.bool_)
        self.recur_at = np.full(len(self.rows), np.inf)

    @property
    def end_sim(self) -> float:
        """When its duration ends (inf: never)."""
        d = self.spec.duration_s
        return math.inf if d is None else self.start_sim + d

    def live_rows(self) -> Rows:
        """The appliances it affects now."""
        return self.rows[self.live]


@dataclass(frozen=True)
class RequestMode:
    """How an appliance answers its health and metrics requests while a fault holds."""

    hung: bool = False
    delay_s: float = 0.0
    variant: str | None = None


class Effects:
    """Per-appliance modifiers of the fleet model, rebuilt from the live faults at each step."""

    def __init__(self, n: int) -> None:
        self.traffic = np.ones(n)
        self.egress = np.ones(n)
        self.hit_cap = np.ones(n)
        self.hit_mult = np.ones(n)
        self.add_5xx = np.zeros(n)
        self.latency_mult = np.ones(n)
        self.latency_floor = np.zeros(n)
        self.retx_add = np.zeros(n)
        self.leak = np.zeros(n)
        self.heat = np.zeros(n)
        self.disk_rate = np.zeros(n)
        self.nic_rate = np.zeros(n)
        self.withdraw = np.zeros(n, dtype=np.bool_)
        self.svc = np.zeros((n, len(SERVICES)), dtype=np.int8)
        self.flaps: list[tuple[Rows, str, float]] = []

    def service(self, rows: Rows, service: str, code: int) -> None:
        """Raise a service's status to at least `code` on `rows`."""
        col = SERVICES.index(service)
        self.svc[rows, col] = np.maximum(self.svc[rows, col], code)


def _crash(f: Fault, fx: Effects, r: Rows, now: float) -> None:
    service = str(f.spec.param("service"))
    fx.service(r, service, SVC_FAILED)
    if service == "nginx":
        fx.egress[r] *= 0.15
        fx.add_5xx[r] += 0.45
    elif service == "cache":
        fx.hit_cap[r] = np.minimum(fx.hit_cap[r], 0.02)
        fx.latency_mult[r] *= 2.5
        fx.add_5xx[r] += 0.05
        fx.egress[r] *= 0.7
    else:  # bgp down: the site's routers stop sending it traffic
        fx.withdraw[r] = True


def _leak(f: Fault, fx: Effects, r: Rows, now: float) -> None:
    fx.leak[r] = np.maximum(fx.leak[r], 1.0 - math.exp(-(now - f.start_sim) / f.spec.num("tau_s")))


def _corruption(f: Fault, fx: Effects, r: Rows, now: float) -> None:
    fx.hit_cap[r] = np.minimum(fx.hit_cap[r], f.spec.num("hit_ratio"))
    fx.latency_mult[r] *= 1.8
    fx.add_5xx[r] += 0.01


def _disk(f: Fault, fx: Effects, r: Rows, now: float) -> None:
    progress = 1.0 - math.exp(-(now - f.start_sim) / DISK_FAILURE_TAU_S)
    fx.disk_rate[r] += f.spec.num("errors_per_s") * (0.2 + 0.8 * progress)
    fx.hit_mult[r] *= 1.0 - 0.25 * progress
    if progress > 0.3:
        fx.service(r, "cache", SVC_DEGRADED)


def _nic(f: Fault, fx: Effects, r: Rows, now: float) -> None:
    fx.retx_add[r] += f.spec.num("retransmit_ratio")
    fx.egress[r] *= f.spec.num("egress_factor")
    fx.nic_rate[r] += f.spec.num("errors_per_s")


def _thermal(f: Fault, fx: Effects, r: Rows, now: float) -> None:
    fx.heat[r] += f.spec.num("rise_c")


def _upstream(f: Fault, fx: Effects, r: Rows, now: float) -> None:
    fx.latency_floor[r] = np.maximum(fx.latency_floor[r], f.spec.num("latency_ms"))
    fx.add_5xx[r] += f.spec.num("http_5xx_ratio")


def _surge(f: Fault, fx: Effects, r: Rows, now: float) -> None:
    fx.traffic[r] *= f.spec.num("factor")


def _flap(f: Fault, fx: Effects, r: Rows, now: float) -> None:
    if int((now - f.start_sim) // f.spec.num("period_s")) % 2 == 0:
        metric = str(f.spec.param("metric"))
        value = f.spec.num("value")
        fx.flaps.append((r, metric, FLAP_VALUES[metric] if math.isnan(value) else value))


def _request_only(f: Fault, fx: Effects, r: Rows, now: float) -> None:
    """Hung, slow and malformed faults change how requests are answered, not the metrics."""


APPLY: dict[str, Callable[[Fault, Effects, Rows, float], None]] = {
    "service_crash": _crash,
    "memory_leak": _leak,
    "cache_corruption": _corruption,
    "disk_failure": _disk,
    "nic_degradation": _nic,
    "thermal": _thermal,
    "hung": _request_only,
    "site_upstream_outage": _upstream,
    "traffic_surge": _surge,
    "flapping": _flap,
    "slow_health": _request_only,
    "malformed": _request_only,
}


@dataclass(frozen=True)
class FaultEvent:
    """A change in a fault's life, for the ground truth."""

    event: str  # fault_injected | fault_cleared | fault_recurred
    fault: Fault
    rows: Rows


class FaultBook:
    """Every fault injected so far, in order; turns the live ones into `Effects`."""

    def __init__(self) -> None:
        self.faults: dict[str, Fault] = {}
        self._ids = itertools.count(1)

    def add(self, spec: FaultSpec, rows: Rows, start_sim: float) -> Fault:
        """Register a fault; it goes live at the next `tick` at or after `start_sim`."""
        fault = Fault(f"f{next(self._ids):04d}", spec, rows, start_sim)
        self.faults[fault.id] = fault
        return fault

    def __iter__(self) -> Iterator[Fault]:
        return iter(self.faults.values())

    def tick(self, now: float) -> list[FaultEvent]:
        """Start due faults, end expired ones, bring back recurring crashes."""
        events = []
        for f in self.faults.values():
            if f.status is FaultStatus.PENDING and now >= f.start_sim:
                f.status, f.live[:] = FaultStatus.ACTIVE, True
                events.append(FaultEvent("fault_injected", f, f.rows))
            if f.status in (FaultStatus.ACTIVE, FaultStatus.FIXED) and now >= f.end_sim:
                f.status, f.live[:] = FaultStatus.CLEARED, False
                events.append(FaultEvent("fault_cleared", f, f.rows))
            back = f.recur_at <= now
            if f.status is not FaultStatus.CLEARED and back.any():
                f.live[back], f.recur_at[back] = True, np.inf
                f.status = FaultStatus.ACTIVE
                events.append(FaultEvent("fault_recurred", f, f.rows[back]))
        return events

    def clear(self, fault: Fault) -> bool:
        """End a fault now; False if it had already ended."""
        if fault.status is FaultStatus.CLEARED:
            return False
        fault.status, fault.live[:], fault.recur_at[:] = FaultStatus.CLEARED, False, np.inf
        return True

    def fix(self, row: int, kinds: set[str], now: float, service: str | None = None) -> list[Fault]:
        """Repair `row` from live faults of `kinds` (crashes only of `service`, if given)."""
        fixed = []
        for f in self.faults.values():
            if f.status is not FaultStatus.ACTIVE or f.spec.kind not in kinds:
                continue
            other = f.spec.kind == "service_crash" and f.spec.param("service") != service
            if service is not None and other:
                continue
            hit = (f.rows == row) & f.live
            if not hit.any():
                continue
            f.live[hit] = False
            if f.spec.kind == "service_crash" and f.spec.param("recur") is True:
                f.recur_at[hit] = now + f.spec.num("recur_after_s")
            if not f.live.any():
                f.status = FaultStatus.FIXED
            fixed.append(f)
        return fixed

    def effects(self, n: int, now: float) -> Effects:
        """The combined modifiers of every live fault."""
        fx = Effects(n)
        for f in self.faults.values():
            if f.status is FaultStatus.ACTIVE:
                APPLY[f.spec.kind](f, fx, f.live_rows(), now)
        return fx

    def request_modes(self) -> dict[int, RequestMode]:
        """Appliances whose answers are hung, slow or malformed, by row."""
        modes: dict[int, RequestMode] = {}
        for f in self.faults.values():
            if f.status is not FaultStatus.ACTIVE:
                continue
            kind = f.spec.kind
            for row in f.live_rows().tolist():
                m = modes.get(row, RequestMode())
                if kind == "hung":
                    m = RequestMode(True, m.delay_s, m.variant)
                elif kind == "slow_health":
                    m = RequestMode(m.hung, max(m.delay_s, f.spec.num("delay_s")), m.variant)
                elif kind == "malformed":
                    m = RequestMode(m.hung, m.delay_s, str(f.spec.param("variant")))
                else:
                    continue
                modes[row] = m
        return modes
