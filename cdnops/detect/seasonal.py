"""A seasonal baseline per series: the temporal detector judges the value less its usual
departure at this time of the week, or of the day, once that pattern is known to explain
the series, and its surprise against the usual peak at this time of the day."""

from __future__ import annotations

from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from cdnops.config.detect import SeasonalConfig
from cdnops.detect.windows import F32, STATE_DTYPE, BoolArray

PEAK_DTYPE = np.float16  # the usual peaks are logs: a few units, 3 significant digits suffice

_A = TypeVar("_A", bound=npt.NDArray[Any])

MAX_VISITS = 255  # visits per bucket are counted in a uint8; past this the weight is constant

SEASONAL_FIELDS = (
    "acc", "acc_n", "level", "level_n",
    "err_seasonal", "err_level", "err_n",  # time of the week, over its known buckets' visits
    "err_day", "err_level_day", "err_n_day",  # time of the day, over its known buckets' visits
    # the largest surprise of this visit and of the one before; log of its usual size, any hour
    "vmax", "vmax_prev", "peak_level",
)  # fmt: skip

# which baseline a series' offset comes from, per cell
NONE, WEEK, DAY = 0, 1, 2
KIND_NAMES = {WEEK: "time-of-week", DAY: "time-of-day"}
# each baseline's errors: its buckets', the plain level's over the same visits, their count
WEEK_ERRORS = ("err_seasonal", "err_level", "err_n")
DAY_ERRORS = ("err_day", "err_level_day", "err_n_day")


class SeasonalState:
    """Per series: the mean of each bucket of the week (by default 168 of an hour) and of
    each bucket of the day (24), learned from the average of each visit of the bucket, so a
    bucket weighs one value per week (per day) whatever the tick interval. Both profiles
    live in `profile`: the week's buckets first, then the day's.

    Each tick the values are summed into the current visit; when the slot changes (the
    tick's timestamp crosses a bucket boundary) the visit's mean is folded into its bucket
    of the week and its bucket of the day, and the offset for the new slot is fixed: a
    bucket's mean less the series' level, where that pattern is known (the bucket was seen
    in `min_visits` weeks, or `day_min_visits` days) and explains the series (over at least
    a week, or a day, of known buckets, the error of the bucket means is below `strength`
    times the error of the plain level). Where both qualify, the one with the smaller error
    wins. Elsewhere the offset is 0 and the value passes unchanged.

    Each bucket of the day also learns its usual peak: the largest temporal surprise over a
    visit and the visit before it (`note_surprise` keeps the visit's), on a log scale. Where
    this time of the day usually brings a peak over `peak_ratio` times the series' usual
    one, `surprise_scale` gives the factor the temporal likelihood judges the surprise with.

    Per tick this costs two passes over the values (three once some series has a pattern)
    and three for the largest surprise; the fold, once per bucket, a few more.
    """

    def __init__(self, shape: tuple[int, int], cfg: SeasonalConfig) -> None:
        self.cfg = cfg
        self.week = cfg.buckets if cfg.enabled else 0
        self.day = cfg.day_buckets if cfg.enabled else 0
        b = self.week + self.day
        self.profile = np.full((b, *shape), np.nan, STATE_DTYPE)
        self.visits = np.zeros((b, *shape), np.uint8)
        self.arrays: dict[str, F32] = {k: np.zeros(shape, STATE_DTYPE) for k in SEASONAL_FIELDS}
        self.offset = np.zeros(shape, STATE_DTYPE)
        self.kind = np.zeros(shape, np.uint8)  # NONE, WEEK or DAY: where the offset comes from
        self.slot = -1  # the slot (bucket_s since the epoch) being summed, -1 before the first
        self._shifted = False  # whether any offset is not 0
        self._out = np.empty(shape, STATE_DTYPE)
        self._bad = np.zeros(0, np.intp)  # the cells without a value at the last `adjust`
        # per bucket of the day: log of the usual largest surprise over it and the bucket
        # before it (a daily spike drifts across the hour's edge); float16 is plenty for a log
        self.peak = np.zeros((self.day, *shape), PEAK_DTYPE)
        self.scale = np.ones(shape, STATE_DTYPE)  # the current slot's factor of the surprise
        self._scaled = False  # whether any factor is below 1

    def surprise_scale(self) -> F32 | None:
        """The factor (at most 1) of each series' surprise at this time of the day, or None
        while every factor is 1."""
        return self.scale if self._scaled else None

    def note_surprise(self, raw: F32, judged: BoolArray | None = None) -> None:
        """Keep the largest surprise of the visit, of the cells with a value this tick, or of
        the `judged` ones only while some series are in their warm-up (a young series'
        surprises are not its usual ones)."""
        if not self.day:
            return
        vmax = self.arrays["vmax"]
        if judged is not None:
            np.maximum(vmax, raw, out=vmax, where=judged)
            return
        # every cell, then the few without a value put back: cheaper than a masked maximum
        saved = vmax.reshape(-1)[self._bad]
        np.maximum(vmax, raw, out=vmax)
        vmax.reshape(-1)[self._bad] = saved

    def buckets_of(self, slot: int) -> tuple[int, int]:
        """The indices in `profile` of a slot's bucket of the week and of the day (-1 where
        that baseline is off). Buckets are aligned to the Unix epoch, in UTC."""
        w = slot % self.week if self.week else -1
        d = self.week + slot % self.day if self.day else -1
        return w, d

    def adjust(self, x: F32, valid: BoolArray, ts: float) -> F32:
        """Learn from this tick's valid values and return them less the seasonal offset (a
        buffer overwritten by the next call; cells not `valid` hold garbage)."""
        if not self.cfg.enabled:
            return x
        if not np.isfinite(ts):  # no time of the week: nothing learned, nothing taken out
            self._bad = np.flatnonzero(~valid)
            return x
        slot = int(ts // self.cfg.bucket_s)
        if slot != self.slot:
            if self.slot >= 0:
                self._fold(self.slot)
            self.slot = slot
            self._set_offset(slot)
        # every cell is summed and the few without a value put back: cheaper than masking
        acc, acc_n = self.arrays["acc"], self.arrays["acc_n"]
        bad = np.flatnonzero(~valid)
        self._bad = bad
        saved = acc.reshape(-1)[bad]
        acc += x
        acc.reshape(-1)[bad] = saved
        acc_n += np.float32(1.0)
        acc_n.reshape(-1)[bad] -= np.float32(1.0)
        if not self._shifted:  # no series has a known pattern (yet): nothing to take out
            return x
        return np.subtract(x, self.offset, out=self._out)

    def _fold(self, slot: int) -> None:
        """Fold the visit summed so far into the slot's buckets, and learn how well each
        profile explains the series compared with its plain level."""
        a, cfg = self.arrays, self.cfg
        seen = a["acc_n"] > 0
        if seen.any():
            idx = np.flatnonzero(seen)
            vm = a["acc"].reshape(-1)[idx] / a["acc_n"].reshape(-1)[idx]
            level = a["level"].reshape(-1)
            w, d = self.buckets_of(slot)
            # log of the visit's largest surprise (below 1 sigma counts as 1)
            vmax = a["vmax"].reshape(-1)[idx]
            u = np.log(np.maximum(vmax, np.float32(1.0)))
            if w >= 0:
                self._learn(w, idx, vm, cfg.min_visits, WEEK_ERRORS)
            if d >= 0:
                self._learn_peak(d, idx, vmax)
                self._learn(d, idx, vm, cfg.day_min_visits, DAY_ERRORS)
            # a running mean over the first visits, then an exponential one
            level_n = a["level_n"].reshape(-1)
            wl = np.maximum(1.0 / (level_n[idx] + 1.0), np.float32(cfg.level_rate))
            level[idx] += (wl * (vm - level[idx])).astype(STATE_DTYPE)
            pl = a["peak_level"].reshape(-1)
            pl[idx] += wl * (u - pl[idx])
            level_n[idx] += 1.0
        a["acc"].fill(0.0)
        a["acc_n"].fill(0.0)
        np.copyto(a["vmax_prev"], a["vmax"])
        a["vmax"].fill(0.0)

    def _learn_peak(self, d: int, idx: npt.NDArray[np.intp], vmax: F32) -> None:
        """Fold the largest surprise of this visit and the one before into bucket `d`'s
        usual peak (log scale: one wild visit moves it by a factor, not by its size)."""
        top = np.maximum(vmax, self.arrays["vmax_prev"].reshape(-1)[idx])
        u = np.log(np.maximum(top, np.float32(1.0)))
        peak = self.peak[d - self.week].reshape(-1)
        nv = self.visits[d].reshape(-1)[idx].astype(STATE_DTYPE)
        wb = np.maximum(1.0 / (nv + 1.0), np.float32(self.cfg.rate))
        old = peak[idx].astype(STATE_DTYPE)
        peak[idx] = old + wb * (u - old)

    def _learn(
        self, b: int, idx: npt.NDArray[np.intp], vm: F32, min_visits: int, names: tuple[str, ...]
    ) -> None:
        """Score bucket `b`'s mean and the level on the visit means `vm` of cells `idx`
        (where the bucket is known), then fold the visit into the bucket."""
        a, cfg = self.arrays, self.cfg
        prof, visits = self.profile[b].reshape(-1), self.visits[b].reshape(-1)
        old, nv = prof[idx], visits[idx]
        known = nv >= min_visits
        k = idx[known]
        err_seasonal, err_level, err_n = (a[name].reshape(-1) for name in names)
        # running means at first, so one lucky early visit does not decide
        w = np.maximum(1.0 / (err_n[k] + 1.0), np.float32(cfg.error_rate))
        err_n[k] += 1.0
        for err, ref in ((err_seasonal, old[known]), (err_level, a["level"].reshape(-1)[k])):
            dv = vm[known] - ref
            err[k] += w * (dv * dv - err[k])
        wb = np.maximum(1.0 / (nv.astype(STATE_DTYPE) + 1.0), np.float32(cfg.rate))
        prof[idx] = np.where(nv == 0, vm, old + wb * (vm - old))
        visits[idx] = np.minimum(nv, MAX_VISITS - 1) + 1

    def _usable(
        self, b: int, min_visits: int, n_buckets: int, names: tuple[str, str, str]
    ) -> BoolArray:
        """Cells where bucket `b`'s profile is known and explains the series."""
        a = self.arrays
        err, err_level, err_n = (a[name] for name in names)
        use: BoolArray = self.visits[b] >= min_visits
        # the errors are compared once they cover a whole period of known buckets
        use &= err_n >= np.float32(n_buckets)
        use &= err < np.float32(self.cfg.strength) * err_level
        return use

    def _set_offset(self, slot: int) -> None:
        a, cfg = self.arrays, self.cfg
        w, d = self.buckets_of(slot)
        self.kind.fill(NONE)
        self.offset.fill(0.0)
        week = np.zeros(self.offset.shape, np.bool_)
        if w >= 0:
            week = self._usable(
                w, cfg.min_visits, self.week, ("err_seasonal", "err_level", "err_n")
            )
        if d >= 0:
            names = ("err_day", "err_level_day", "err_n_day")
            day = self._usable(d, cfg.day_min_visits, self.day, names)
            # where both explain the series, the one with the smaller error relative to the level
            # (each is measured against the level over its own visits)
            better = a["err_day"] * a["err_level"] < a["err_seasonal"] * a["err_level_day"]
            day &= ~week | better
            week &= ~day
            np.subtract(self.profile[d], a["level"], out=self.offset, where=day)
            self.kind[day] = DAY
        if w >= 0:
            np.subtract(self.profile[w], a["level"], out=self.offset, where=week)
            self.kind[week] = WEEK
        self._shifted = bool(self.offset.any())
        self._set_scale(d)

    def _set_scale(self, d: int) -> None:
        """Where this time of the day (the bucket, an hour either side) usually brings a
        largest surprise more than `peak_ratio` times the series' usual one, the surprise
        is judged smaller by the excess: a spike at the same time every day is no anomaly,
        a spike well above it still is."""
        self.scale.fill(1.0)
        self._scaled = False
        a, cfg = self.arrays, self.cfg
        if d < 0 or not cfg.peak_ratio:
            return
        known = self.visits[d] >= cfg.day_min_visits
        known &= a["level_n"] >= np.float32(self.day)  # the usual peak covers a day
        if not known.any():
            return
        k = d - self.week
        # the peaks of buckets k (hours k-1..k) and k+1 (hours k..k+1)
        peak = np.maximum(self.peak[k], self.peak[(k + 1) % self.day]).astype(STATE_DTYPE)
        np.subtract(a["peak_level"], peak, out=peak)
        np.exp(peak, out=peak)
        peak *= np.float32(cfg.peak_ratio)
        np.minimum(peak, np.float32(1.0), out=self.scale, where=known)
        self._scaled = bool((self.scale < 1.0).any())

    def set_offset_array(self, offset: F32, kind: npt.NDArray[np.uint8], scale: F32) -> None:
        """Restore the current slot's offsets, where they come from and the factors of the
        surprise (from saved state)."""
        self.offset, self.kind, self.scale = offset, kind, scale
        self._shifted = bool(offset.any())
        self._scaled = bool((scale < 1.0).any())

    def baseline_offset(self, i: int, j: int) -> float:
        """The offset applied to cell (i, j) in the current bucket (0 where none)."""
        return float(self.offset[i, j])

    def baseline_kind(self, i: int, j: int) -> str:
        """Which seasonal baseline cell (i, j) is judged against ("" where none)."""
        return KIND_NAMES.get(int(self.kind[i, j]), "")

    def take(self, rows: npt.NDArray[np.intp], keep: BoolArray) -> None:
        """Re-index rows after an inventory change (see `TemporalState.take`)."""
        self.profile = _take(self.profile, rows, keep, np.nan, axis=1)
        self.visits = _take(self.visits, rows, keep, 0, axis=1)
        for k, arr in self.arrays.items():
            self.arrays[k] = _take(arr, rows, keep, 0.0, axis=0)
        self.peak = _take(self.peak, rows, keep, 0.0, axis=1)
        self.scale = _take(self.scale, rows, keep, 1.0, axis=0)
        self._scaled = bool((self.scale < 1.0).any())
        self.offset = _take(self.offset, rows, keep, 0.0, axis=0)
        self.kind = _take(self.kind, rows, keep, NONE, axis=0)
        self._shifted = bool(self.offset.any())
        self._out = np.empty(self.offset.shape, STATE_DTYPE)


def _take(arr: _A, rows: npt.NDArray[np.intp], keep: BoolArray, fill: float, axis: int) -> _A:
    moved = np.moveaxis(arr, axis, 0)
    out = np.full((len(rows), *moved.shape[1:]), fill, arr.dtype)
    out[keep] = moved[rows[keep]]
    return np.ascontiguousarray(np.moveaxis(out, 0, axis))  # type: ignore[return-value]
