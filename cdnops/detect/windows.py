"""Rolling state per series: robust two-scale EWMA and the anomaly likelihood of its z-scores."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from cdnops.config.detect import TemporalConfig

F32 = npt.NDArray[np.float32]
BoolArray = npt.NDArray[np.bool_]

_A = TypeVar("_A", bound=npt.NDArray[Any])

STATE_DTYPE = np.float32
_HALF_SCORE_LOG10 = 5.0
_LT_AT_1 = 0.7995  # -log10 of the normal tail at z = 1
_LN10 = float(np.log(10.0))
_HALF_LN_2PI = 0.5 * float(np.log(2.0 * np.pi))
# Abramowitz & Stegun 26.2.17 (error < 7.5e-8): Q(z) = phi(z) * t * poly(t), t = 1/(1+p z).
_AS_P = 0.2316419
_AS_B = (0.319381530, -0.356563782, 1.781477937, -1.821255978, 1.330274429)


def log10_tail(z: F32) -> F32:
    """-log10 of the upper normal tail Q(z) for z >= 0, without underflow."""
    t = 1.0 / (1.0 + _AS_P * z)
    poly: F32 = np.full_like(t, _AS_B[4])
    for b in reversed(_AS_B[:4]):
        poly = poly * t + np.float32(b)
    log_q = np.log(t * poly) - 0.5 * z * z - _HALF_LN_2PI
    out: F32 = (-log_q / _LN10).astype(STATE_DTYPE, copy=False)
    return out


@dataclass(frozen=True, slots=True)
class TemporalParams:
    """The kernel's constants, derived once from the config."""

    a_fast: float
    a_slow: float
    a_short: float
    a_long: float
    clip: float
    rel_floor2: float
    abs_floor2: float
    threshold: float
    refractory: int
    warmup: int = 0  # a series arms the re-alarm damping only once it has more values
    record_ratio: float = 0.0  # 0: no record score
    record_decay: float = 1.0  # per tick, of the largest recent surprise
    record_min: float = 0.0  # surprises below this never score as a record
    rate_weight: float = 0.0  # 0: a firing scores its likelihood, however often the series fires
    rate_decay: float = 1.0  # per tick of the series, of its count of earlier firings

    @classmethod
    def from_config(cls, cfg: TemporalConfig, warmup: int = 0) -> TemporalParams:
        """EWMA weights are 1/ticks so a window of N ticks has a memory of about N ticks."""
        return cls(
            a_fast=1.0 / cfg.fast_ticks,
            a_slow=1.0 / cfg.slow_ticks,
            a_short=1.0 / cfg.short_ticks,
            a_long=1.0 / cfg.long_ticks,
            clip=cfg.clip_sigma,
            rel_floor2=cfg.rel_floor**2,
            abs_floor2=cfg.abs_floor**2,
            threshold=cfg.threshold,
            refractory=cfg.refractory_ticks,
            warmup=warmup,
            record_ratio=cfg.record_ratio,
            record_decay=1.0 - 1.0 / cfg.record_ticks,
            record_min=cfg.min_z,
            rate_weight=cfg.rate_weight,
            rate_decay=1.0 - 1.0 / cfg.rate_ticks,
        )


_YOUNG_TICKS = 8
STATE_FIELDS = (
    "mean_f", "var_f", "mean_s", "var_s", "r_short", "r_mean", "r_var", "quiet", "peak",
    "fires", "fired_at",  # earlier firings (faded to `fired_at`) and the count at the last one
)  # fmt: skip


class TemporalState:
    """The temporal detector for an (n, m) block of series, updated once per tick.

    Each tick scores the new value against the state built from the past only, then
    folds the value into the state. The raw score is the larger direction-aware z-score
    against a fast and a slow EWMA baseline; updates are clipped to `clip_sigma` so one
    outlier barely moves the baseline. The final score is the anomaly likelihood of the
    raw score: how improbable its short average is under its own long-run distribution,
    on Numenta's log scale, so a series that is always noisy does not always alarm. A raw
    score `record_ratio` times the largest of the recent ones (`peak`, fading over
    `record_ticks`) scores at least 0.5 even where its short average is not improbable.
    A firing (a score at the threshold outside the re-alarm damping) reports
    `threshold + (1 - threshold) x score / (1 + rate_weight x n)`, n the series' earlier
    firings fading over `rate_ticks`: still a firing, but ranked below the firings of
    series that seldom fire.
    """

    def __init__(self, shape: tuple[int, int], params: TemporalParams) -> None:
        self.params = params
        self.arrays: dict[str, F32] = {k: np.zeros(shape, STATE_DTYPE) for k in STATE_FIELDS}
        self.count = np.zeros(shape, np.int32)  # valid updates so far (warm-up)
        self.seeded = np.zeros(shape, np.bool_)
        self._kernel: Kernel | None = None

    @property
    def count(self) -> npt.NDArray[np.int32]:
        """Valid updates so far per series (the warm-up and the running-mean start)."""
        return self._count

    @count.setter
    def count(self, value: npt.NDArray[np.int32]) -> None:
        self._count = value
        self._oldest: int | None = None
        self._quiet: npt.NDArray[np.intp] | None = None  # cells that may have quiet > 0

    @property
    def oldest(self) -> int:
        """The smallest count, kept up to date without a pass over the whole block."""
        if self._oldest is None:
            self._oldest = int(self._count.min()) if self._count.size else 0
        return self._oldest

    def note_counts(self, oldest: int, missed_counts: npt.NDArray[np.int32]) -> None:
        """After a tick where every series gained one value but those that missed it (whose
        counts are `missed_counts`); `oldest` is the smallest count before the tick."""
        low = int(missed_counts.min()) if missed_counts.size else oldest + 1
        self._oldest = min(oldest + 1, low)

    def quiet_cells(self) -> npt.NDArray[np.intp]:
        """Flat indices of the series that may still be in their re-alarm damping."""
        if self._quiet is None:
            self._quiet = np.flatnonzero(self.arrays["quiet"] > 0)
        return self._quiet

    def set_quiet_cells(self, cells: npt.NDArray[np.intp]) -> None:
        """Record the cells `quiet_cells` returns on the next tick."""
        self._quiet = cells

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, columns)."""
        s = self.count.shape
        return (s[0], s[1])

    def _seed(self, x: F32, valid: BoolArray) -> None:
        """A series' first valid value becomes its baseline (no history to compare with)."""
        new = valid & ~self.seeded
        if not new.any():
            return
        a = self.arrays
        np.copyto(a["mean_f"], x, where=new)
        np.copyto(a["mean_s"], x, where=new)
        for k in STATE_FIELDS:
            if k not in ("mean_f", "mean_s"):
                a[k][new] = 0.0
        self.seeded |= new

    def update(
        self,
        x: F32,
        valid: BoolArray,
        up: F32,
        down: F32,
        min_var: F32 | None = None,
        scale: F32 | None = None,
    ) -> tuple[F32, F32, F32]:
        """Score this tick's values, then learn from them.

        Args:
            x: values (n, m); anything where `valid` is False is ignored.
            valid: which cells hold a value to score and learn from.
            up: (m,) 1 where a rise is bad, else 0; `down` likewise for a drop.
            min_var: (m,) floor of the variance per column (default: `abs_floor` squared).
            scale: (n, m) factor of the surprise before the likelihood (default 1): where
                this time of the day usually brings a large surprise.

        Returns:
            (likelihood, score, surprise): the likelihood in [0, 1] says whether the series
            is anomalous now; the score is the likelihood with re-alarms of an episode
            damped (`refractory_ticks`), for ranking alarms; the surprise is the larger
            direction-aware z-score of the two baselines. All are meaningless where `valid`
            is False or the series is not warmed up.
        """
        if min_var is None:
            min_var = np.full(self.shape[1], self.params.abs_floor2, STATE_DTYPE)
        if self.oldest >= _YOUNG_TICKS and self.params.refractory:
            if self._kernel is None or self._kernel.shape != self.shape:
                self._kernel = Kernel(self.shape)
            return self._kernel.update(self, x, valid, up, down, min_var, scale)
        return self._update_young(x, valid, up, down, min_var, scale)

    def _update_young(
        self, x: F32, valid: BoolArray, up: F32, down: F32, min_var: F32, scale: F32 | None
    ) -> tuple[F32, F32, F32]:
        """The general update: seeds new series and does not clip young ones."""
        oldest = self.oldest
        if oldest == 0:
            self._seed(x, valid)
        a, p = self.arrays, self.params
        xf = np.where(valid, x, a["mean_s"])
        vf = valid.astype(STATE_DTYPE)
        # Until a series has 1/a values, the EWMAs are plain running means (bias-corrected
        # start), and outliers are not clipped: there is no spread to clip against yet.
        # Once every series is old enough the weights are scalars, which saves passes.
        weight = _Weights(self.count, oldest, vf)
        floor2 = a["mean_s"] * a["mean_s"] * np.float32(p.rel_floor2)
        floor2 += min_var
        z_slow, sd_s = _zscore(xf, a["mean_s"], a["var_s"], floor2)
        z_fast, sd_f = _zscore(xf, a["mean_f"], a["var_f"], floor2)
        raw = _directed2(z_slow, z_fast, up, down)
        young = self.count < _YOUNG_TICKS if oldest < _YOUNG_TICKS else None
        for mean, var, z, sd, alpha in (
            (a["mean_s"], a["var_s"], z_slow, sd_s, p.a_slow),
            (a["mean_f"], a["var_f"], z_fast, sd_f, p.a_fast),
        ):
            _ewm_clipped(mean, var, z, sd, weight(alpha), p.clip, young)
        # the likelihood and the record judge the surprise less this time of day's usual peak
        judged = raw if scale is None else raw * scale
        likelihood = self._likelihood(judged, weight)
        self._record(likelihood, judged, valid)
        self.count = self.count + valid
        if self.params.refractory:
            return likelihood, self._damp_repeats(likelihood, vf), raw
        return likelihood, likelihood, raw

    def _likelihood(self, raw: F32, weight: _Weights) -> F32:
        a, p = self.arrays, self.params
        short, mean, var = a["r_short"], a["r_mean"], a["r_var"]
        short += (raw - short) * weight(p.a_short)
        sd = np.sqrt(var)
        zr = ((short - mean) / (sd + np.float32(1e-3))).astype(STATE_DTYPE, copy=False)
        score = _likelihood_score(zr)
        # The long-run distribution learns from the raw score clipped near its bulk, so an
        # anomaly does not teach the detector that anomalies are normal.
        sd *= np.float32(3.0)
        sd += np.float32(1.0)
        d = np.minimum(raw - mean, sd)
        w = weight(p.a_long)
        mean += d * w
        var *= 1.0 - w
        d *= d
        d *= w * (1.0 - w)
        var += d
        return score

    def _record(self, score: F32, raw: F32, valid: BoolArray) -> None:
        """Fold the record score into `score`, then let the largest recent surprise fade and
        learn this tick's (once a series is past its young ticks, whose surprises are
        against no spread yet)."""
        p = self.params
        if not p.record_ratio:
            return
        peak = self.arrays["peak"]
        cells = np.flatnonzero(raw >= np.float32(p.record_min))
        if cells.size:
            flat = score.reshape(-1)
            rec = record_score(raw.reshape(-1)[cells], peak.reshape(-1)[cells], p.record_ratio)
            flat[cells] = np.maximum(flat[cells], rec)
        learn = valid & (self.count >= _YOUNG_TICKS)
        np.copyto(peak, np.maximum(peak * np.float32(p.record_decay), raw), where=learn)

    def _damp_repeats(self, score: F32, vf: F32) -> F32:
        """After a firing, later firings of the same episode are damped for a while."""
        quiet = self.arrays["quiet"]
        damped = score.copy()
        was_quiet = quiet > 0
        np.multiply(damped, np.float32(0.5), out=damped, where=was_quiet)
        quiet -= vf
        np.maximum(quiet, 0.0, out=quiet)
        # a score before the warm-up is never reported, so it is no alarm to damp repeats of
        arm = (damped >= self.params.threshold) & (self.count > self.params.warmup)
        if self.params.rate_weight:
            fresh = np.flatnonzero(arm & ~was_quiet & (vf > 0))
            # the count before this tick's update, the clock the kernel uses
            now = self.count.reshape(-1)[fresh] - 1
            rank_firings(self, fresh, now, damped.reshape(-1))
        np.copyto(quiet, np.float32(self.params.refractory), where=arm)
        return damped

    def take(self, rows: npt.NDArray[np.intp], keep: BoolArray) -> None:
        """Re-index rows after an inventory change: row i becomes old row `rows[i]` where
        `keep[i]`, else a fresh series."""
        for k, arr in self.arrays.items():
            self.arrays[k] = _take_rows(arr, rows, keep, 0.0)
        self.count = _take_rows(self.count, rows, keep, 0)
        self.seeded = _take_rows(self.seeded, rows, keep, False)
        self._kernel = None


def _take_rows(arr: _A, rows: npt.NDArray[np.intp], keep: BoolArray, fill: object) -> _A:
    out = np.full((len(rows), *arr.shape[1:]), fill, arr.dtype)
    out[keep] = arr[rows[keep]]
    return out  # type: ignore[return-value]


def _zscore(x: F32, mean: F32, var: F32, floor2: F32) -> tuple[F32, F32]:
    sd = np.sqrt(var + floor2)
    z = x - mean
    z /= sd
    return z, sd


def _directed(z: F32, up: F32, down: F32) -> F32:
    """The part of z that is bad: max(z * up, -z * down), never negative."""
    out: F32 = np.maximum(z * up, -z * down)
    np.maximum(out, 0.0, out=out)
    return out


def _directed2(z1: F32, z2: F32, up: F32, down: F32) -> F32:
    """max(_directed(z1), _directed(z2)) in fewer passes (up and down are 0 or 1)."""
    hi: F32 = np.maximum(z1, z2)
    hi *= up
    lo = np.minimum(z1, z2)
    lo *= down
    np.negative(lo, out=lo)
    np.maximum(hi, lo, out=hi)
    np.maximum(hi, 0.0, out=hi)
    return hi


def _ewm_clipped(
    mean: F32, var: F32, z: F32, sd: F32, w: F32, clip: float, young: BoolArray | None
) -> None:
    """One step of exponentially weighted mean and variance with the deviation clipped to
    `clip` sigmas (not for `young` series, which have no spread yet)."""
    zc = np.clip(z, -clip, clip) if young is None else np.where(young, z, np.clip(z, -clip, clip))
    zc *= sd  # the clipped deviation
    mean += zc * w
    var *= 1.0 - w
    zc *= zc
    zc *= w * (1.0 - w)
    var += zc


def record_score(raw: F32, peak: F32, ratio: float) -> F32:
    """How far a surprise beats the largest recent one: t = raw / (ratio x peak) maps to
    t^4 / (1 + t^4), 0.5 at t = 1 (a surprise `ratio` times the largest recent one), 0.06
    at half that, 0.94 at twice. A series whose surprise was always 0 (a flat line) has
    no recent largest one: any surprise beats it."""
    t = raw / (peak * np.float32(ratio) + np.float32(1e-6))
    np.minimum(t, np.float32(100.0), out=t)  # t^4 stays finite in float32
    t *= t
    t *= t
    out: F32 = (t / (t + np.float32(1.0))).astype(STATE_DTYPE, copy=False)
    return out


def rank_firings(
    st: TemporalState, cells: npt.NDArray[np.intp], now: npt.NDArray[Any], flat: F32
) -> None:
    """The reported score of fresh firings (flat indices `cells`, at the series' update
    count `now`): threshold + (1 - threshold) x score / (1 + rate_weight x n), n the
    series' earlier firings, each fading over `rate_ticks` of the series; then count this
    one. The fading is applied lazily, from the count at the last firing."""
    if not cells.size:
        return
    p = st.params
    fires = st.arrays["fires"].reshape(-1)
    at = st.arrays["fired_at"].reshape(-1)
    t = now.astype(STATE_DTYPE)
    n = fires[cells] * np.power(np.float32(p.rate_decay), t - at[cells], dtype=STATE_DTYPE)
    thr = np.float32(p.threshold)
    s = flat[cells] / (np.float32(1.0) + np.float32(p.rate_weight) * n)
    flat[cells] = thr + (np.float32(1.0) - thr) * np.minimum(s, np.float32(1.0))
    fires[cells] = n + np.float32(1.0)
    at[cells] = t


def _likelihood_score(zr: F32) -> F32:
    """Map the likelihood's z to [0, 1): -log10 of the normal tail, 0.5 at a tail of 1e-5,
    never saturating so the most extreme scores stay ordered. Below z = 1 (a tail above
    0.16, never an alarm) a straight line stands in for the tail, which saves the work."""
    score = np.maximum(zr, 0.0) * np.float32(_LT_AT_1)
    far = np.flatnonzero(zr > 1.0)
    if far.size:
        flat = score.reshape(-1)
        flat[far] = log10_tail(zr.reshape(-1)[far])
    score /= score + np.float32(_HALF_SCORE_LOG10)
    return score


class _Weights:
    """EWMA weights for one tick: max(a, 1/(count+1)) where a series is young, else a."""

    def __init__(self, count: npt.NDArray[np.int32], oldest: int, vf: F32) -> None:
        self.count, self.oldest, self.vf = count, oldest, vf
        self._inv: F32 | None = None

    def __call__(self, alpha: float) -> F32:
        if self.oldest + 1 >= 1.0 / alpha:
            out: F32 = self.vf * np.float32(alpha)
            return out
        if self._inv is None:
            self._inv = np.reciprocal(self.count + np.float32(1.0), dtype=STATE_DTYPE)
        return np.maximum(self._inv, np.float32(alpha)) * self.vf


from cdnops.detect.kernel import Kernel  # noqa: E402  (the kernel uses this module's helpers)
