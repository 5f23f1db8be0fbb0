"""Hysteresis over firing cells: enter after k of the last n ticks, leave after m clean ticks."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from cdnops.model import BoolArray


class Hysteresis:
    """Per-cell state machine, vectorized; the last `window` verdicts are kept as bits."""

    def __init__(self, shape: tuple[int, ...], enter: int, window: int, clear: int) -> None:
        if not 1 <= enter <= window <= 16:
            raise ValueError("need 1 <= enter <= window <= 16")
        self.enter, self.window, self.clear = enter, window, clear
        self.mask = np.uint16((1 << window) - 1)
        self.bits = np.zeros(shape, np.uint16)
        self.active = np.zeros(shape, np.bool_)
        self.clean = np.zeros(shape, np.int32)  # clean ticks in a row while active
        self._idle = False  # no bit set and nothing active: a tick without firing is a no-op

    def update(self, fired: BoolArray) -> tuple[BoolArray, BoolArray]:
        """Fold one tick of verdicts in; returns (entered, cleared) masks."""
        if self._idle and not fired.any():
            # nothing can enter or clear, and the bits and counters stay as they are (clean
            # only matters while active); the healthy fleet's usual tick
            none = np.zeros(self.bits.shape, np.bool_)
            return none, none
        self.bits <<= np.uint16(1)
        self.bits |= fired
        self.bits &= self.mask
        entered = ~self.active & (np.bitwise_count(self.bits) >= self.enter)
        self.clean += 1
        self.clean *= ~fired
        cleared = self.active & (self.clean >= self.clear)
        self.active |= entered
        self.active &= ~cleared
        # forget the firings before the clean run, or a short clear_ticks could let them
        # count again on the next tick
        np.copyto(self.bits, np.uint16(0), where=cleared)
        self._idle = not self.active.any() and not self.bits.any()
        return entered, cleared

    def first_fired_ago(self, cells: BoolArray) -> npt.NDArray[np.int64]:
        """For each True cell (row-major order), how many ticks ago the oldest firing
        verdict still in its window was (0: this tick); call right after `update`.

        Only the cells that just entered are asked, so this costs nothing on most ticks.
        """
        bits = self.bits[cells]
        # the highest set bit is the oldest verdict; frexp's exponent is the bit length
        return np.frexp(bits.astype(np.float64))[1].astype(np.int64) - 1

    def grow(self, shape: tuple[int, ...]) -> None:
        """Widen to more columns (a service seen for the first time); new cells are clean."""
        if shape == self.bits.shape:
            return
        for name in ("bits", "active", "clean"):
            old = getattr(self, name)
            new = np.zeros(shape, old.dtype)
            new[tuple(slice(0, s) for s in old.shape)] = old
            setattr(self, name, new)
        self._idle = False

    def take(self, rows: npt.NDArray[np.intp], keep: BoolArray) -> None:
        """Re-index rows after an inventory change; new rows start clean."""
        for name in ("bits", "active", "clean"):
            old = getattr(self, name)
            new = np.zeros((len(rows), *old.shape[1:]), old.dtype)
            new[keep] = old[rows[keep]]
            setattr(self, name, new)
        self._idle = False
