"""A time-of-week baseline per series: the temporal detector judges the value less its usual
departure at this time of the week, once that pattern is known to explain the series."""

from __future__ import annotations

from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from cdnops.config.detect import SeasonalConfig
from cdnops.detect.windows import F32, STATE_DTYPE, BoolArray

_A = TypeVar("_A", bound=npt.NDArray[Any])

MAX_VISITS = 255  # visits per bucket are counted in a uint8; past this the weight is constant

SEASONAL_FIELDS = ("acc", "acc_n", "level", "level_n", "err_seasonal", "err_level", "err_n")


class SeasonalState:
    """Per series: the mean of each bucket of the week (by default 168 of an hour), learned from
    the average of each visit of the bucket, so a bucket weighs one value per week whatever
    the tick interval.

    Each tick the values are summed into the current visit; when the bucket changes (the
    tick's timestamp crosses a bucket boundary) the visit's mean is folded into its bucket,
    and the offset for the new bucket is fixed: the bucket's mean less the series' level,
    where the pattern is known (the bucket was seen in `min_visits` weeks) and explains the
    series (over at least a week of known buckets, the error of the bucket means is below
    `strength` times the error of the plain level). Elsewhere the offset is 0 and the
    value passes unchanged.

    Per tick this costs two passes over the values (three once some series has a pattern);
    the fold, once per bucket, a few more.
    """

    def __init__(self, shape: tuple[int, int], cfg: SeasonalConfig) -> None:
        self.cfg = cfg
        b = cfg.buckets if cfg.enabled else 0
        self.profile = np.full((b, *shape), np.nan, STATE_DTYPE)
        self.visits = np.zeros((b, *shape), np.uint8)
        self.arrays: dict[str, F32] = {k: np.zeros(shape, STATE_DTYPE) for k in SEASONAL_FIELDS}
        self.offset = np.zeros(shape, STATE_DTYPE)
        self.bucket = -1  # the bucket of the visit being summed, -1 before the first tick
        self._shifted = False  # whether any offset is not 0
        self._out = np.empty(shape, STATE_DTYPE)

    def bucket_of(self, ts: float) -> int:
        """The bucket of a Unix timestamp (buckets are aligned to the Unix epoch, in UTC)."""
        return int(ts // self.cfg.bucket_s) % self.cfg.buckets

    def adjust(self, x: F32, valid: BoolArray, ts: float) -> F32:
        """Learn from this tick's valid values and return them less the seasonal offset (a
        buffer overwritten by the next call; cells not `valid` hold garbage)."""
        if not self.cfg.enabled or not np.isfinite(ts):
            return x
        b = self.bucket_of(ts)
        if b != self.bucket:
            if self.bucket >= 0:
                self._fold(self.bucket)
            self.bucket = b
            self._set_offset(b)
        # every cell is summed and the few without a value put back: cheaper than masking
        acc, acc_n = self.arrays["acc"], self.arrays["acc_n"]
        bad = np.flatnonzero(~valid)
        saved = acc.reshape(-1)[bad]
        acc += x
        acc.reshape(-1)[bad] = saved
        acc_n += np.float32(1.0)
        acc_n.reshape(-1)[bad] -= np.float32(1.0)
        if not self._shifted:  # no series has a known pattern (yet): nothing to take out
            return x
        return np.subtract(x, self.offset, out=self._out)

    def _fold(self, b: int) -> None:
        """Fold the visit summed so far into bucket `b`, and learn how well buckets explain
        the series compared with its plain level."""
        a, cfg = self.arrays, self.cfg
        seen = a["acc_n"] > 0
        if seen.any():
            idx = np.flatnonzero(seen)
            n_vis = a["acc_n"].reshape(-1)[idx]
            vm = a["acc"].reshape(-1)[idx] / n_vis
            prof, visits = self.profile[b].reshape(-1), self.visits[b].reshape(-1)
            old, nv = prof[idx], visits[idx]
            level = a["level"].reshape(-1)
            known = nv >= cfg.min_visits
            k = idx[known]
            # running means at first, so one lucky early visit does not decide
            err_n = a["err_n"].reshape(-1)
            w = np.maximum(1.0 / (err_n[k] + 1.0), np.float32(cfg.error_rate))
            err_n[k] += 1.0
            for name, ref in (("err_seasonal", old[known]), ("err_level", level[k])):
                err = a[name].reshape(-1)
                d = vm[known] - ref
                err[k] += w * (d * d - err[k])
            # a running mean over the first visits, then an exponential one
            level_n = a["level_n"].reshape(-1)
            wl = np.maximum(1.0 / (level_n[idx] + 1.0), np.float32(cfg.level_rate))
            level[idx] += (wl * (vm - level[idx])).astype(STATE_DTYPE)
            level_n[idx] += 1.0
            wb = np.maximum(1.0 / (nv.astype(STATE_DTYPE) + 1.0), np.float32(cfg.rate))
            prof[idx] = np.where(nv == 0, vm, old + wb * (vm - old))
            visits[idx] = np.minimum(nv, MAX_VISITS - 1) + 1
        a["acc"].fill(0.0)
        a["acc_n"].fill(0.0)

    def _set_offset(self, b: int) -> None:
        a, cfg = self.arrays, self.cfg
        use = self.visits[b] >= cfg.min_visits
        # the errors are compared once they cover a whole week of known buckets
        use &= a["err_n"] >= np.float32(cfg.buckets)
        use &= a["err_seasonal"] < np.float32(cfg.strength) * a["err_level"]
        np.subtract(self.profile[b], a["level"], out=self.offset)
        np.copyto(self.offset, np.float32(0.0), where=~use)
        self._shifted = bool(use.any())

    def set_offset_array(self, offset: F32) -> None:
        """Restore the current bucket's offsets (from saved state)."""
        self.offset = offset
        self._shifted = bool(offset.any())

    def baseline_offset(self, i: int, j: int) -> float:
        """The offset applied to cell (i, j) in the current bucket (0 where none)."""
        return float(self.offset[i, j])

    def take(self, rows: npt.NDArray[np.intp], keep: BoolArray) -> None:
        """Re-index rows after an inventory change (see `TemporalState.take`)."""
        self.profile = _take(self.profile, rows, keep, np.nan, axis=1)
        self.visits = _take(self.visits, rows, keep, 0, axis=1)
        for k, arr in self.arrays.items():
            self.arrays[k] = _take(arr, rows, keep, 0.0, axis=0)
        self.offset = _take(self.offset, rows, keep, 0.0, axis=0)
        self._shifted = bool(self.offset.any())
        self._out = np.empty(self.offset.shape, STATE_DTYPE)


def _take(arr: _A, rows: npt.NDArray[np.intp], keep: BoolArray, fill: float, axis: int) -> _A:
    moved = np.moveaxis(arr, axis, 0)
    out = np.full((len(rows), *moved.shape[1:]), fill, arr.dtype)
    out[keep] = moved[rows[keep]]
    return np.ascontiguousarray(np.moveaxis(out, 0, axis))  # type: ignore[return-value]
