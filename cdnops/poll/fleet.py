"""The fleet arrays a tick's polls write into, and their snapshot as a FleetFrame."""

from __future__ import annotations

import numpy as np

from cdnops.model import (
    ApplianceState,
    CodeArray,
    FleetFrame,
    FloatArray,
    Inventory,
    PollFailure,
    is_counter,
)
from cdnops.poll.health import Sample
from cdnops.poll.rates import CounterRates

_NOT_POLLED = int(PollFailure.NOT_POLLED)
_UNKNOWN = int(ApplianceState.UNKNOWN)


class ServiceCatalog:
    """Service names seen so far, in order of first sighting: the service columns."""

    def __init__(self) -> None:
        self.column: dict[str, int] = {}
        self.names: list[str] = []

    def add(self, name: str) -> int:
        """The column of a service, allocating one for a new name."""
        j = self.column.get(name)
        if j is None:
            j = self.column[name] = len(self.names)
            self.names.append(name)
        return j


class FleetArrays:
    """Preallocated appliance x metric arrays for the tick in progress.

    A poll writes its row directly (`write` / `fail`); `snapshot` turns the tick into a
    FleetFrame (counters become rates) and clears the arrays for the next tick.
    Validity is not stored: every invalid cell holds NaN and every valid value is finite.
    """

    def __init__(self, inventory: Inventory, metrics: tuple[str, ...]) -> None:
        n, m = len(inventory.appliances), len(metrics)
        self.inventory = inventory
        self.metrics = metrics
        self.sites = inventory.sites
        site_row = {s: i for i, s in enumerate(self.sites)}
        self.site_index = np.array(
            [site_row[a.site] for a in inventory.appliances], dtype=np.int32
        ).reshape(n)
        self.counter_cols = np.array([j for j, x in enumerate(metrics) if is_counter(x)], dtype=int)
        self.catalog = ServiceCatalog()
        self.rates = CounterRates(n, len(self.counter_cols))
        self.values: FloatArray = np.full((n, m), np.nan)
        self.sample_ts: FloatArray = np.full(n, np.nan)
        self.uptime: FloatArray = np.full(n, np.nan)
        self.failure: CodeArray = np.full(n, _NOT_POLLED, dtype=np.int8)
        self.state: CodeArray = np.zeros(n, dtype=np.int8)
        self.service_status: CodeArray = np.zeros((n, 8), dtype=np.int8)

    def write(self, row: int, sample: Sample) -> None:
        """Store a good poll."""
        self.values[row] = sample.values
        self.sample_ts[row] = sample.ts
        self.uptime[row] = sample.uptime_s
        self.failure[row] = 0
        self.state[row] = sample.state
        status = self.service_status
        status[row] = 0
        for name, code in sample.services:
            j = self.catalog.column.get(name)
            if j is None:
                j = self.catalog.add(name)
                if j >= status.shape[1]:
                    status = self._grow_services()
            status[row, j] = code

    def fail(self, row: int, failure: int) -> None:
        """Store a failed poll: nothing is known about the appliance for this tick."""
        self.values[row] = np.nan
        self.sample_ts[row] = np.nan
        self.uptime[row] = np.nan
        self.failure[row] = failure
        self.state[row] = _UNKNOWN
        self.service_status[row] = 0

    def _grow_services(self) -> CodeArray:
        old = self.service_status
        grown = np.zeros((old.shape[0], old.shape[1] * 2), dtype=np.int8)
        grown[:, : old.shape[1]] = old
        self.service_status = grown
        return grown

    def snapshot(self, ts: float, seq: int) -> tuple[FleetFrame, int]:
        """The tick as a frame, and how many counters reset; then start a fresh tick."""
        values = self.values
        cols = self.counter_cols
        resets = 0
        if cols.size:
            update = self.rates.update(values[:, cols], self.sample_ts)
            values[:, cols] = update.rates
            resets = update.resets
        s = len(self.catalog.names)
        frame = FleetFrame(
            ts=ts,
            seq=seq,
            inventory=self.inventory,
            site_index=self.site_index,
            sites=self.sites,
            metrics=self.metrics,
            values=values,
            valid=np.isfinite(values),
            failure=self.failure,
            state=self.state,
            uptime_s=self.uptime,
            services=tuple(self.catalog.names),
            service_status=self.service_status[:, :s].copy(),
        )
        self._clear()
        return frame, resets

    def _clear(self) -> None:
        # Fresh arrays rather than in-place fills: the frame just emitted owns the old ones.
        n, m = self.values.shape
        self.values = np.full((n, m), np.nan)
        self.sample_ts = np.full(n, np.nan)
        self.uptime = np.full(n, np.nan)
        self.failure = np.full(n, _NOT_POLLED, dtype=np.int8)
        self.state = np.zeros(n, dtype=np.int8)
        self.service_status = np.zeros_like(self.service_status)

    def remap(self, inventory: Inventory) -> FleetArrays:
        """Arrays for a new inventory: kept appliances keep their row data and counter state."""
        old_row = self.inventory.index()
        rows = [old_row.get(a.id) for a in inventory.appliances]
        out = FleetArrays(inventory, self.metrics)
        out.catalog = self.catalog
        out.rates = self.rates.remap(rows)
        out.service_status = np.zeros((len(rows), self.service_status.shape[1]), dtype=np.int8)
        new = [i for i, r in enumerate(rows) if r is not None]
        old = [r for r in rows if r is not None]
        for name in ("values", "sample_ts", "uptime", "failure", "state", "service_status"):
            getattr(out, name)[new] = getattr(self, name)[old]
        return out
