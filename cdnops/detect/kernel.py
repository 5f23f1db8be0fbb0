"""The temporal detector's steady-state tick: few passes, in place, block by block in cache."""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeAlias

import numpy as np

from cdnops.detect.windows import (
    F32,
    STATE_DTYPE,
    BoolArray,
    log10_tail,
    rank_firings,
    record_score,
)

if TYPE_CHECKING:
    from cdnops.detect.windows import TemporalState

_LT_AT_1 = 0.7995  # -log10 of the normal tail at z = 1
_HALF_SCORE_LOG10 = 5.0
# Cells per block: the block's twenty-odd arrays then stay in a core's cache instead of
# streaming whole-fleet arrays through memory for every pass (15-25 % faster per tick on
# the benchmark machine; 8k-64k cells per block are all about as good).
BLOCK_CELLS = 16384
Weight: TypeAlias = float | F32


class Kernel:
    """Scratch buffers for one (n, m) shape and the fused update that uses them.

    Missing cells are computed like the others and then put back as they were (they are
    few), which is cheaper than weighting every update by a validity mask. Work that only
    matters for the few cells near an alarm (the normal tail, re-alarm damping) is done on
    those cells only.
    """

    def __init__(self, shape: tuple[int, int]) -> None:
        self.shape = shape
        n, m = shape
        self.rows = max(1, BLOCK_CELLS // max(m, 1))
        block = (min(self.rows, max(n, 1)), m)
        self.tmp = [np.empty(block, STATE_DTYPE) for _ in range(6)]
        self.wbuf = [np.empty(block, STATE_DTYPE) for _ in range(9)]
        self._consts: dict[str, F32] = {}
        self._key: tuple[bytes, ...] = ()
        self.raw = np.empty(shape, STATE_DTYPE)
        self.lik = np.empty(shape, STATE_DTYPE)
        self.damped = np.empty(shape, STATE_DTYPE)
        self.mask = np.empty(shape, np.bool_)
        # this tick's record scores: flat cell indices and scores, by block
        self._records: list[tuple[np.ndarray, F32]] = []

    def update(
        self,
        st: TemporalState,
        x: F32,
        valid: BoolArray,
        up: F32,
        down: F32,
        min_var: F32,
        scale: F32 | None = None,
    ) -> tuple[F32, F32, F32]:
        """One tick for series that all have at least a few values (no seeding, clipping on).

        Returns (likelihood, damped score, raw surprise); the arrays are scratch buffers,
        overwritten by the next call.
        """
        a, oldest = st.arrays, st.oldest
        np.logical_not(valid, out=self.mask)
        bad = np.flatnonzero(self.mask)
        saved = {k: v.reshape(-1)[bad] for k, v in a.items()}
        count_saved = st.count.reshape(-1)[bad]
        c = self._constants(st, up, down, min_var)
        n = self.shape[0]
        self._records.clear()
        for r0 in range(0, n, self.rows):
            self._block(st, slice(r0, min(n, r0 + self.rows)), x, c, scale)
        self._tail()
        for cells, rec in self._records:
            flat = self.lik.reshape(-1)
            flat[cells] = np.maximum(flat[cells], rec)
        damped = self._damp(st)
        # in place: assigning `st.count` would drop its cached oldest count and quiet cells
        np.add(st.count, 1, out=st.count)
        for k, v in a.items():
            v.reshape(-1)[bad] = saved[k]
        st.count.reshape(-1)[bad] = count_saved
        st.note_counts(oldest, count_saved)
        return self.lik, damped, self.raw

    def _constants(self, st: TemporalState, up: F32, down: F32, min_var: F32) -> dict[str, F32]:
        """Per-column constants laid out as whole blocks, and scalars as arrays: numpy's
        minimum, maximum and operations against a short broadcast row run several times
        slower than the same operation between two arrays of the same shape."""
        key = (up.tobytes(), down.tobytes(), min_var.tobytes())
        if key != self._key:
            rows, p = self.tmp[0].shape[0], st.params
            tile = (rows, 1)
            full = self.tmp[0].shape
            self._consts = {
                "up": np.tile(up.astype(STATE_DTYPE), tile),
                "neg_down": np.tile(-down.astype(STATE_DTYPE), tile),
                "min_var": np.tile(min_var.astype(STATE_DTYPE), tile),
                "clip": np.full(full, p.clip, STATE_DTYPE),
                "neg_clip": np.full(full, -p.clip, STATE_DTYPE),
                "zero": np.zeros(self.shape, STATE_DTYPE),
            }
            for i, alpha in enumerate((p.a_slow, p.a_fast, p.a_short, p.a_long)):
                self._consts[f"alpha{i}"] = np.full(full, alpha, STATE_DTYPE)
            self._key = key
        return self._consts

    def _block(
        self, st: TemporalState, rows: slice, x: F32, c: dict[str, F32], scale: F32 | None
    ) -> None:
        a, p = st.arrays, st.params
        k = rows.stop - rows.start
        t = [b[:k] for b in self.tmp]
        ws = self._weights(st, rows, k, (p.a_slow, p.a_fast, p.a_short, p.a_long), c)
        slow = (a["mean_s"][rows], a["var_s"][rows])
        fast = (a["mean_f"][rows], a["var_f"][rows])
        raw = self.raw[rows]
        f2, sd_s, z_s, sd_f, z_f, tmp = t[:6]
        np.multiply(slow[0], slow[0], out=f2)
        f2 *= np.float32(p.rel_floor2)
        f2 += c["min_var"][:k]
        xb = x[rows]
        for (mean, var), sd, z in ((slow, sd_s, z_s), (fast, sd_f, z_f)):
            np.add(var, f2, out=sd)
            np.sqrt(sd, out=sd)
            np.subtract(xb, mean, out=z)
            z /= sd
        # max(z up, -z down) of both scales; never negative since up or down is 1
        np.maximum(z_s, z_f, out=raw)
        raw *= c["up"][:k]
        np.minimum(z_s, z_f, out=tmp)
        tmp *= c["neg_down"][:k]
        np.maximum(raw, tmp, out=raw)
        hi, lo = c["clip"][:k], c["neg_clip"][:k]
        for (mean, var), sd, z, (w, w1) in ((slow, sd_s, z_s, ws[0]), (fast, sd_f, z_f, ws[1])):
            np.minimum(z, hi, out=z)
            np.maximum(z, lo, out=z)
            z *= sd
            _ewm_step(mean, var, z, w, w1, tmp)
        if scale is not None:  # the likelihood judges the surprise scaled (z_s is free now)
            raw = np.multiply(raw, scale[rows], out=z_s)
        self._likelihood(st, rows, raw, ws[2], ws[3], t)
        if p.record_ratio:
            self._record(st, rows, raw, tmp)

    def _record(self, st: TemporalState, rows: slice, raw: F32, tmp: F32) -> None:
        """The record score where the surprise is at least `record_min` (few cells), kept
        for after the tail; then the largest recent surprise fades and learns this one."""
        p = st.params
        peak = st.arrays["peak"][rows]
        cells = np.flatnonzero(raw >= np.float32(p.record_min))
        if cells.size:
            rec = record_score(raw.reshape(-1)[cells], peak.reshape(-1)[cells], p.record_ratio)
            self._records.append((cells + rows.start * self.shape[1], rec))
        np.multiply(peak, np.float32(p.record_decay), out=tmp)
        np.maximum(tmp, raw, out=peak)

    def _weights(
        self,
        st: TemporalState,
        rows: slice,
        k: int,
        alphas: tuple[float, ...],
        c: dict[str, F32],
    ) -> list[tuple[Weight, Weight]]:
        """(w, 1 - w) per scale: scalars once every series is older than the scale's window,
        else max(1 / (count + 1), alpha) per cell (running means at the start)."""
        oldest = st.oldest
        out: list[tuple[Weight, Weight]] = []
        inv = self.wbuf[8][:k]
        filled = False
        for i, alpha in enumerate(alphas):
            if oldest + 1 >= 1.0 / alpha:
                out.append((alpha, 1.0 - alpha))
                continue
            if not filled:
                # cast, then add: an int32 + float32 add goes through a slow mixed-type loop
                np.copyto(inv, st.count[rows], casting="unsafe")
                inv += np.float32(1.0)
                np.reciprocal(inv, out=inv)
                filled = True
            w, w1 = self.wbuf[2 * i][:k], self.wbuf[2 * i + 1][:k]
            np.maximum(inv, c[f"alpha{i}"][:k], out=w)
            np.subtract(np.float32(1.0), w, out=w1)
            out.append((w, w1))
        return out

    def _likelihood(
        self,
        st: TemporalState,
        rows: slice,
        raw: F32,
        w_short: tuple[Weight, Weight],
        w_long: tuple[Weight, Weight],
        t: list[F32],
    ) -> None:
        a = st.arrays
        short, mean, var = a["r_short"][rows], a["r_mean"][rows], a["r_var"][rows]
        sd, zr, tmp = t[0], t[1], t[5]
        np.subtract(raw, short, out=tmp)
        tmp *= w_short[0]
        short += tmp
        np.sqrt(var, out=sd)
        np.subtract(short, mean, out=zr)
        np.add(sd, np.float32(1e-3), out=tmp)
        # the likelihood's z goes where the score will be; _tail maps it
        lik = self.lik[rows]
        np.divide(zr, tmp, out=lik)
        # learn from the raw score clipped near the bulk: anomalies must not become normal
        sd *= np.float32(3.0)
        sd += np.float32(1.0)
        np.subtract(raw, mean, out=tmp)
        np.minimum(tmp, sd, out=tmp)
        _ewm_step(mean, var, tmp, w_long[0], w_long[1], zr)

    def _tail(self) -> None:
        """Map the likelihood's z to -log10 of the normal tail L, then to L / (L + 5); a
        straight line stands in for L below z = 1 (a tail above 0.16, never an alarm), which
        saves the work there."""
        zr, mask = self.lik, self.mask
        np.greater(zr, np.float32(1.0), out=mask)
        far = np.flatnonzero(mask)
        lt = log10_tail(zr.reshape(-1)[far])
        np.maximum(zr, self._consts["zero"], out=zr)
        tmp = self.damped  # free until _damp
        np.add(zr, np.float32(_HALF_SCORE_LOG10 / _LT_AT_1), out=tmp)
        zr /= tmp
        zr.reshape(-1)[far] = lt / (lt + np.float32(_HALF_SCORE_LOG10))

    def _damp(self, st: TemporalState) -> F32:
        """After a firing, later firings of the same episode score half for a while; a
        firing that opens an episode is ranked by how often its series fires."""
        quiet = st.arrays["quiet"].reshape(-1)
        damped = self.damped
        np.copyto(damped, self.lik)
        flat = damped.reshape(-1)
        idx = st.quiet_cells()
        if idx.size:
            flat[idx] *= np.float32(0.5)
            quiet[idx] = np.maximum(quiet[idx] - np.float32(1.0), np.float32(0.0))
        np.greater_equal(damped, np.float32(st.params.threshold), out=self.mask)
        fired = np.flatnonzero(self.mask)
        # a score before the warm-up is never reported, so it is no alarm to damp repeats of
        fired = fired[st.count.reshape(-1)[fired] >= st.params.warmup]
        if st.params.rate_weight and fired.size:
            # a firing outside the damping opens an episode: rank it by the series' rate
            fresh = fired[~np.isin(fired, idx, assume_unique=True)] if idx.size else fired
            rank_firings(st, fresh, st.count.reshape(-1)[fresh], flat)
        quiet[fired] = np.float32(st.params.refractory)
        st.set_quiet_cells(np.unique(np.concatenate((idx[quiet[idx] > 0], fired))))
        return damped


def _ewm_step(mean: F32, var: F32, d: F32, w: Weight, w1: Weight, tmp: F32) -> None:
    """mean += w d; var = (1 - w) (var + w d^2), the EWMA variance around the old mean."""
    np.multiply(d, w, out=tmp)
    mean += tmp
    tmp *= d
    var += tmp
    var *= w1
