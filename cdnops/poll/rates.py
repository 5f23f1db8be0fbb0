"""Counters to per-second rates, from the last two good samples of each cell, with resets."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cdnops.model import BoolArray, FloatArray


@dataclass(frozen=True, slots=True)
class RateUpdate:
    """The outcome of one tick: rates (NaN where there is none) and how many counters reset."""

    rates: FloatArray  # (n, c)
    valid: BoolArray  # (n, c)
    resets: int


class CounterRates:
    """Per appliance x counter: the previous good sample and its timestamp.

    A rate needs two good samples of the same cell; a failed poll or a missing counter keeps
    the previous sample, so the next good one still yields a rate (over the longer span).
    A value lower than the previous one is a reset (the appliance restarted): no rate for
    that poll, never a negative one, and the new value becomes the base.
    """

    def __init__(self, n: int, counters: int) -> None:
        self.prev = np.full((n, counters), np.nan)
        self.prev_ts = np.full((n, counters), np.nan)
        self.resets_total = 0

    @property
    def shape(self) -> tuple[int, int]:
        """(appliances, counters)."""
        return (self.prev.shape[0], self.prev.shape[1])

    def update(self, current: FloatArray, ts: FloatArray) -> RateUpdate:
        """Fold in one tick: `current` (n, c) raw counters (NaN: absent), `ts` (n,) sample times."""
        cur_ts = np.broadcast_to(ts[:, None], current.shape)
        have = np.isfinite(current) & np.isfinite(cur_ts)
        both = have & np.isfinite(self.prev)
        dt = cur_ts - self.prev_ts
        delta = current - self.prev
        with np.errstate(invalid="ignore", divide="ignore"):
            reset = both & (delta < 0)
            ok = both & (delta >= 0) & (dt > 0)
            rates = np.where(ok, delta / np.where(ok, dt, 1.0), np.nan)
        self.prev = np.where(have, current, self.prev)
        self.prev_ts = np.where(have, cur_ts, self.prev_ts)
        resets = int(np.count_nonzero(reset))
        self.resets_total += resets
        return RateUpdate(rates=rates, valid=ok, resets=resets)

    def remap(self, rows: list[int | None]) -> CounterRates:
        """State for a new row order: `rows[i]` is the old row of new row i, None if new."""
        out = CounterRates(len(rows), self.prev.shape[1])
        out.resets_total = self.resets_total
        old = [r for r in rows if r is not None]
        new = [i for i, r in enumerate(rows) if r is not None]
        out.prev[new] = self.prev[old]
        out.prev_ts[new] = self.prev_ts[old]
        return out
