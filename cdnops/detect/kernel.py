"""The temporal detector's steady-state tick: few full-array passes, in place, no temporaries."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from cdnops.detect.windows import F32, STATE_DTYPE, BoolArray, log10_tail

if TYPE_CHECKING:
    from cdnops.detect.windows import TemporalState

_LT_AT_1 = 0.7995  # -log10 of the normal tail at z = 1
_HALF_SCORE_LOG10 = 5.0
Weight = float | F32


class Kernel:
    """Scratch buffers for one (n, m) shape and the fused update that uses them.

    Missing cells are computed like the others and then put back as they were (they are
    few), which is cheaper than weighting every update by a validity mask. Work that only
    matters for the few cells near an alarm (the normal tail, re-alarm damping) is done on
    those cells only.
    """

    def __init__(self, shape: tuple[int, int]) -> None:
        self.shape = shape
        self.buf = [np.empty(shape, STATE_DTYPE) for _ in range(8)]
        self.mask = np.empty(shape, np.bool_)

    def update(
        self, st: TemporalState, x: F32, valid: BoolArray, up: F32, down: F32, min_var: F32
    ) -> tuple[F32, F32, F32]:
        """One tick for series that all have at least a few values (no seeding, clipping on).

        Returns (likelihood, damped score, raw surprise); the arrays are scratch buffers,
        overwritten by the next call.
        """
        a, p = st.arrays, st.params
        np.logical_not(valid, out=self.mask)
        bad = np.flatnonzero(self.mask)
        saved = {k: v.reshape(-1)[bad] for k, v in a.items()}
        count_saved = st.count.reshape(-1)[bad]
        w_s, w_f, w_short, w_long = self._weights(st, (p.a_slow, p.a_fast, p.a_short, p.a_long))
        raw = self._baselines(st, x, up, down, min_var, (w_s, w_f))
        lik = self._likelihood(st, raw, w_short, w_long)
        damped = self._damp(st, lik)
        st.count += 1
        for k, v in a.items():
            v.reshape(-1)[bad] = saved[k]
        st.count.reshape(-1)[bad] = count_saved
        st.note_counts(bad, count_saved)
        return lik, damped, raw

    def _weights(self, st: TemporalState, alphas: tuple[float, ...]) -> list[tuple[Weight, Weight]]:
        """(w, 1 - w) per scale: scalars once every series is older than the scale's window,
        else max(1 / (count + 1), alpha) per cell (running means at the start)."""
        oldest = st.oldest
        out: list[tuple[Weight, Weight]] = []
        inv: F32 | None = None
        for alpha in alphas:
            if oldest + 1 >= 1.0 / alpha:
                out.append((alpha, 1.0 - alpha))
                continue
            if inv is None:
                inv = self.buf[7]
                np.add(st.count, np.float32(1.0), out=inv, casting="unsafe")
                np.reciprocal(inv, out=inv)
            w = np.maximum(inv, np.float32(alpha))
            out.append((w, np.subtract(np.float32(1.0), w)))
        return out

    def _baselines(
        self,
        st: TemporalState,
        x: F32,
        up: F32,
        down: F32,
        min_var: F32,
        weights: tuple[tuple[Weight, Weight], tuple[Weight, Weight]],
    ) -> F32:
        a, p = st.arrays, st.params
        f2, sd_s, z_s, sd_f, z_f, raw, tmp, _ = self.buf
        np.multiply(a["mean_s"], a["mean_s"], out=f2)
        f2 *= np.float32(p.rel_floor2)
        f2 += min_var
        for mean, var, sd, z in (
            (a["mean_s"], a["var_s"], sd_s, z_s),
            (a["mean_f"], a["var_f"], sd_f, z_f),
        ):
            np.add(var, f2, out=sd)
            np.sqrt(sd, out=sd)
            np.subtract(x, mean, out=z)
            z /= sd
        # max(z up, -z down) of both scales; never negative since up or down is 1
        np.maximum(z_s, z_f, out=raw)
        raw *= up
        np.minimum(z_s, z_f, out=tmp)
        tmp *= -down
        np.maximum(raw, tmp, out=raw)
        clip = np.float32(p.clip)
        for (mean, var, sd, z), (w, w1) in zip(
            ((a["mean_s"], a["var_s"], sd_s, z_s), (a["mean_f"], a["var_f"], sd_f, z_f)),
            weights,
            strict=True,
        ):
            _ewm_step(mean, var, z, sd, w, w1, clip, tmp)
        return raw

    def _likelihood(self, st: TemporalState, raw: F32, w_short: tuple[Weight, Weight],
                    w_long: tuple[Weight, Weight]) -> F32:  # fmt: skip
        a = st.arrays
        short, mean, var = a["r_short"], a["r_mean"], a["r_var"]
        sd, zr, tmp = self.buf[0], self.buf[1], self.buf[6]
        np.subtract(raw, short, out=tmp)
        tmp *= w_short[0]
        short += tmp
        np.sqrt(var, out=sd)
        np.subtract(short, mean, out=zr)
        np.add(sd, np.float32(1e-3), out=tmp)
        zr /= tmp
        score = self.buf[2]
        _score(zr, score, tmp, self.mask)
        # learn from the raw score clipped near the bulk: anomalies must not become normal
        sd *= np.float32(3.0)
        sd += np.float32(1.0)
        np.subtract(raw, mean, out=tmp)
        np.minimum(tmp, sd, out=tmp)
        _ewm_step_dev(mean, var, tmp, w_long[0], w_long[1], zr)
        return score

    def _damp(self, st: TemporalState, lik: F32) -> F32:
        """After a firing, later firings of the same episode score half for a while."""
        quiet = st.arrays["quiet"].reshape(-1)
        damped = self.buf[3]
        np.copyto(damped, lik)
        flat = damped.reshape(-1)
        idx = st.quiet_cells()
        if idx.size:
            flat[idx] *= np.float32(0.5)
            quiet[idx] = np.maximum(quiet[idx] - np.float32(1.0), np.float32(0.0))
        np.greater_equal(damped, np.float32(st.params.threshold), out=self.mask)
        fired = np.flatnonzero(self.mask)
        # a score before the warm-up is never reported, so it is no alarm to damp repeats of
        fired = fired[st.count.reshape(-1)[fired] >= st.params.warmup]
        quiet[fired] = np.float32(st.params.refractory)
        st.set_quiet_cells(np.unique(np.concatenate((idx[quiet[idx] > 0], fired))))
        return damped


def _ewm_step(
    mean: F32, var: F32, z: F32, sd: F32, w: Weight, w1: Weight, clip: np.float32, tmp: F32
) -> None:
    """EWMA mean and variance with the deviation clipped to `clip` sigmas; z is consumed."""
    np.clip(z, -clip, clip, out=z)
    z *= sd
    _ewm_step_dev(mean, var, z, w, w1, tmp)


def _ewm_step_dev(mean: F32, var: F32, d: F32, w: Weight, w1: Weight, tmp: F32) -> None:
    """mean += w d; var = (1 - w) (var + w d^2), the EWMA variance around the old mean."""
    np.multiply(d, w, out=tmp)
    mean += tmp
    tmp *= d
    var += tmp
    var *= w1


def _score(zr: F32, out: F32, tmp: F32, mask: BoolArray) -> None:
    """-log10 of the normal tail L of zr mapped to L / (L + 5); a straight line stands in
    for L below zr = 1 (a tail above 0.16, never an alarm), which saves the work there."""
    np.maximum(zr, np.float32(0.0), out=out)
    np.greater(zr, np.float32(1.0), out=mask)
    far = np.flatnonzero(mask)
    k = np.float32(_HALF_SCORE_LOG10 / _LT_AT_1)
    np.add(out, k, out=tmp)
    out /= tmp
    if far.size:
        lt = log10_tail(zr.reshape(-1)[far])
        out.reshape(-1)[far] = lt / (lt + np.float32(_HALF_SCORE_LOG10))
