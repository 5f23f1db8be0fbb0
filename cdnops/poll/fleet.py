"""The fleet's tick in progress, and its snapshot as a FleetFrame of numpy arrays."""

from __future__ import annotations

import math
from array import array

import numpy as np

from cdnops.model import (
    ApplianceState,
    CodeArray,
    FleetFrame,
    Inventory,
    PollFailure,
    is_counter,
)
from cdnops.poll.health import Sample
from cdnops.poll.rates import CounterRates

_NOT_POLLED = int(PollFailure.NOT_POLLED)
_UNKNOWN = int(ApplianceState.UNKNOWN)
_NO_SERVICES: list[tuple[str, int]] = []


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
    """One slot per appliance for the tick in progress; `snapshot` makes the FleetFrame.

    A poll stores references into per-row Python lists (a few list stores, no numpy call):
    converting the whole fleet to arrays once per tick is far cheaper than a numpy
    assignment per poll. The last poll of a row within the tick wins.
    """

    def __init__(self, inventory: Inventory, metrics: tuple[str, ...]) -> None:
        n = len(inventory.appliances)
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
        self._m = len(metrics)
        self._blank = array("d", [math.nan]) * self._m
        # consecutive failed polls per row: carried across ticks, unlike the tick's slots
        self._streak = array("i", [0]) * n
        self._clear()

    def _clear(self) -> None:
        # Typed buffers: a store converts to C once, and the snapshot is a memory copy.
        n = len(self.inventory.appliances)
        self._values = self._blank * n  # row-major, m per appliance
        self._ts = array("d", [math.nan]) * n
        self._uptime = array("d", [math.nan]) * n
        self._failure = array("b", [_NOT_POLLED]) * n
        self._state = array("b", [_UNKNOWN]) * n
        self._services: list[list[tuple[str, int]]] = [_NO_SERVICES] * n

    def write(self, row: int, sample: Sample) -> None:
        """Store a good poll."""
        values, ts, uptime, state, services = sample
        m = self._m
        self._values[row * m : row * m + m] = array("d", values)
        self._ts[row] = ts
        self._uptime[row] = uptime
        self._failure[row] = 0
        self._state[row] = state
        self._services[row] = services
        self._streak[row] = 0

    def fail(self, row: int, failure: int) -> None:
        """Store a failed poll: nothing is known about the appliance for this tick."""
        m = self._m
        self._values[row * m : row * m + m] = self._blank
        self._ts[row] = math.nan
        self._uptime[row] = math.nan
        self._failure[row] = failure
        self._state[row] = _UNKNOWN
        self._services[row] = _NO_SERVICES
        self._streak[row] += 1

    def streak(self, row: int) -> int:
        """Consecutive failed polls of a row so far."""
        return self._streak[row]

    def snapshot(self, ts: float, seq: int) -> tuple[FleetFrame, int]:
        """The tick as a frame, and how many counters reset; then start a fresh tick."""
        n, m = len(self._ts), self._m
        values = np.frombuffer(self._values, dtype=np.float64).reshape(n, m).copy()
        cols = self.counter_cols
        resets = 0
        if cols.size:
            update = self.rates.update(values[:, cols], np.frombuffer(self._ts, dtype=np.float64))
            values[:, cols] = update.rates
            resets = update.resets
        status = self._service_status()
        frame = FleetFrame(
            ts=ts,
            seq=seq,
            inventory=self.inventory,
            site_index=self.site_index,
            sites=self.sites,
            metrics=self.metrics,
            values=values,
            valid=np.isfinite(values),
            failure=np.frombuffer(self._failure, dtype=np.int8).copy(),
            state=np.frombuffer(self._state, dtype=np.int8).copy(),
            uptime_s=np.frombuffer(self._uptime, dtype=np.float64).copy(),
            services=tuple(self.catalog.names),
            service_status=status,
            fail_streak=np.frombuffer(self._streak, dtype=np.int32).copy(),
        )
        self._clear()
        return frame, resets

    def _service_status(self) -> CodeArray:
        # The parser hands out one list per distinct service combination, so rows share
        # objects: tabulate each distinct object once, then index the table by row.
        rows = self._services
        ids = np.fromiter(map(id, rows), dtype=np.uint64, count=len(rows))
        _, first, inverse = np.unique(ids, return_index=True, return_inverse=True)
        combos = [rows[i] for i in first.tolist()]
        for combo in combos:
            for name, _ in combo:
                self.catalog.add(name)
        table = np.zeros((len(combos), len(self.catalog.names)), dtype=np.int8)
        column = self.catalog.column
        for k, combo in enumerate(combos):
            for name, code in combo:
                table[k, column[name]] = code
        status: CodeArray = table[inverse.reshape(-1)]
        return status

    def remap(self, inventory: Inventory) -> FleetArrays:
        """Slots for a new inventory: kept appliances keep this tick's data and counter state."""
        old_row = self.inventory.index()
        rows = [old_row.get(a.id) for a in inventory.appliances]
        out = FleetArrays(inventory, self.metrics)
        out.catalog = self.catalog
        out.rates = self.rates.remap(rows)
        m = self._m
        for i, r in enumerate(rows):
            if r is not None:
                out._values[i * m : i * m + m] = self._values[r * m : r * m + m]
        for name in ("_ts", "_uptime", "_failure", "_state", "_services", "_streak"):
            old, new = getattr(self, name), getattr(out, name)
            for i, r in enumerate(rows):
                if r is not None:
                    new[i] = old[r]
        return out
