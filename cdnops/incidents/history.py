"""A ring of the last ticks' metric values for triage: (ticks, appliances, metrics) float32."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from cdnops.model import FleetFrame, Inventory

F32Array = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class HistoryWindow:
    """A copy of the recent history of some appliances, oldest tick first."""

    ts: npt.NDArray[np.float64]  # (T,)
    values: F32Array  # (T, r, m), NaN where there was no valid value
    appliances: tuple[str, ...]  # (r,)
    metrics: tuple[str, ...]  # (m,)


class History:
    """The last `capacity_ticks` frames of the whole fleet.

    Memory is `capacity_ticks * n * m * 4` bytes: 60 ticks of 20,000 appliances x 12
    metrics is 58 MB. Appending copies one (n, m) frame; when the inventory or the
    metric set changes, the ring is re-laid out once, keeping rows and columns by name.
    """

    def __init__(self, capacity_ticks: int) -> None:
        if capacity_ticks < 1:
            raise ValueError(f"capacity_ticks must be >= 1, got {capacity_ticks}")
        self.capacity = capacity_ticks
        self._ring: F32Array = np.empty((capacity_ticks, 0, 0), np.float32)
        self._ts = np.full(capacity_ticks, np.nan)
        self._ids: tuple[str, ...] = ()
        self._metrics: tuple[str, ...] = ()
        self._index: dict[str, int] = {}
        self._inventory: Inventory | None = None  # the last one seen, for a cheap identity check
        self._pos = 0  # next slot to write
        self._count = 0

    def __len__(self) -> int:
        return self._count

    @property
    def nbytes(self) -> int:
        return int(self._ring.nbytes)

    def append(self, frame: FleetFrame) -> None:
        """Add one tick; invalid cells are stored as NaN."""
        ids = tuple(a.id for a in frame.inventory.appliances) if self._changed(frame) else None
        if ids is not None:
            self._relayout(ids, frame.metrics)
            self._inventory = frame.inventory
        slot = self._ring[self._pos]
        np.copyto(slot, frame.values, casting="same_kind")
        slot[~frame.valid] = np.nan
        self._ts[self._pos] = frame.ts
        self._pos = (self._pos + 1) % self.capacity
        self._count = min(self._count + 1, self.capacity)

    def rows(self, appliance_ids: Sequence[str]) -> list[int]:
        """Rows of the given appliances; unknown ids are skipped."""
        return [self._index[a] for a in appliance_ids if a in self._index]

    def window(self, rows: Sequence[int], ticks: int | None = None) -> HistoryWindow:
        """A copy of the last `ticks` ticks (all kept if None) of the given rows."""
        count = self._count if ticks is None else min(ticks, self._count)
        order = (self._pos - count + np.arange(count)) % self.capacity
        idx = np.asarray(rows, dtype=np.intp)
        return HistoryWindow(
            ts=self._ts[order].copy(),
            values=self._ring[np.ix_(order, idx)] if count else self._empty(len(idx)),
            appliances=tuple(self._ids[i] for i in idx),
            metrics=self._metrics,
        )

    def _empty(self, r: int) -> F32Array:
        return np.empty((0, r, len(self._metrics)), np.float32)

    def _changed(self, frame: FleetFrame) -> bool:
        if frame.metrics != self._metrics or frame.n != len(self._ids):
            return True
        if frame.inventory is self._inventory:
            return False
        self._inventory = frame.inventory
        return any(a.id != b for a, b in zip(frame.inventory.appliances, self._ids, strict=True))

    def _relayout(self, ids: tuple[str, ...], metrics: tuple[str, ...]) -> None:
        ring = np.full((self.capacity, len(ids), len(metrics)), np.nan, np.float32)
        old_cols = {m: j for j, m in enumerate(self._metrics)}
        keep_rows = [(i, self._index[a]) for i, a in enumerate(ids) if a in self._index]
        keep_cols = [(j, old_cols[m]) for j, m in enumerate(metrics) if m in old_cols]
        if keep_rows and keep_cols and self._count:
            new_r, old_r = (np.array(x, dtype=np.intp) for x in zip(*keep_rows, strict=True))
            new_c, old_c = (np.array(x, dtype=np.intp) for x in zip(*keep_cols, strict=True))
            ring[:, new_r[:, None], new_c[None, :]] = self._ring[:, old_r[:, None], old_c[None, :]]
        self._ring = ring
        self._ids = ids
        self._metrics = metrics
        self._index = {a: i for i, a in enumerate(ids)}
