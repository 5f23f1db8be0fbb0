"""Builds synthetic `FleetFrame`s for the detection tests."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from cdnops.model import (
    CONTRACT_METRICS,
    Appliance,
    ApplianceState,
    FleetFrame,
    Inventory,
    PollFailure,
)

TICK_S = 10.0


def inventory(sites: Sequence[tuple[str, int]]) -> Inventory:
    """`[("sea01", 8), ("fra02", 6)]` -> appliances `sea01-oca-000` ... in site order."""
    return Inventory(
        tuple(
            Appliance(id=f"{site}-oca-{k:03d}", site=site, url=f"http://127.0.0.1:1/a/{site}{k}")
            for site, count in sites
            for k in range(count)
        )
    )


class FrameMaker:
    """Makes consecutive frames for an inventory; each call is one tick."""

    def __init__(self, inv: Inventory, metrics: Sequence[str] = CONTRACT_METRICS) -> None:
        self.inv = inv
        self.metrics = tuple(metrics)
        self.seq = 0
        self.services: tuple[str, ...] = ()

    def frame(
        self,
        values: np.ndarray,
        *,
        failure: np.ndarray | None = None,
        state: np.ndarray | None = None,
        service_status: np.ndarray | None = None,
        fail_streak: np.ndarray | None = None,
    ) -> FleetFrame:
        """One tick; NaN cells of `values` are invalid."""
        n = len(self.inv.appliances)
        sites = self.inv.sites
        pos = {s: i for i, s in enumerate(sites)}
        site_index = np.array([pos[a.site] for a in self.inv.appliances], np.int32)
        fail = np.zeros(n, np.int8) if failure is None else failure.astype(np.int8)
        vals = np.array(values, np.float64).reshape(n, len(self.metrics)).copy()
        vals[fail != PollFailure.OK] = np.nan
        st = np.full(n, ApplianceState.SERVING, np.int8) if state is None else state
        svc = np.zeros((n, 0), np.int8) if service_status is None else service_status
        self.seq += 1
        return FleetFrame(
            ts=1_764_547_200.0 + self.seq * TICK_S,
            seq=self.seq,
            inventory=self.inv,
            site_index=site_index,
            sites=sites,
            metrics=self.metrics,
            values=vals,
            valid=~np.isnan(vals),
            failure=fail,
            state=st.astype(np.int8),
            uptime_s=np.full(n, 1000.0 + self.seq * TICK_S),
            services=self.services,
            service_status=svc.astype(np.int8),
            fail_streak=None if fail_streak is None else fail_streak.astype(np.int32),
        )


def normal_values(n: int, rng: np.random.Generator) -> np.ndarray:
    """Plausible healthy values of the contract's metrics, with a little noise."""
    base = np.array([0.4, 0.6, 38.0, 50000.0, 0.97, 0.0004, 84.0, 0.002, 51.0, 3000.0, 0.0, 0.0])
    noise = np.array([0.02, 0.005, 1.0, 1500.0, 0.003, 0.0001, 4.0, 0.0002, 0.5, 90.0, 0.0, 0.0])
    out: np.ndarray = base + rng.normal(size=(n, len(base))) * noise
    return out
