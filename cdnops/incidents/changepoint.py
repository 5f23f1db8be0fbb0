"""Vectorized signal statistics for triage: gap filling, noise, mean-shift change points, ranks."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

F64Array = npt.NDArray[np.float64]
IdxArray = npt.NDArray[np.intp]


def fill_gaps(x: F64Array) -> tuple[F64Array, npt.NDArray[np.bool_]]:
    """Carry each row's last valid value forward; a leading gap gets the row's mean.

    The mean rather than the first value, so that a gap does not look like a level shift.

    Returns the filled (S, T) copy and which rows had any valid value at all.
    """
    valid = np.isfinite(x)
    if valid.all():
        return x.copy(), np.ones(x.shape[0], dtype=bool)
    s, t = x.shape
    pos = np.where(valid, np.arange(t), 0)
    np.maximum.accumulate(pos, axis=1, out=pos)
    rows = np.arange(s)[:, None]
    out = x[rows, pos]
    has_any: npt.NDArray[np.bool_] = np.asarray(valid.any(axis=1))
    counts = np.maximum(valid.sum(axis=1), 1)
    mean = np.where(valid, x, 0.0).sum(axis=1) / counts
    out = np.where(np.isfinite(out), out, mean[:, None])
    return out, has_any


def noise_sigma(x: F64Array) -> F64Array:
    """Robust noise level per row: the MAD of first differences, which a mean shift barely moves.

    Floored at 1% of the row's range so a noiseless step still gets a finite score.
    """
    d = np.diff(x, axis=1)
    med = np.median(d, axis=1, keepdims=True)
    sigma = 1.4826 * np.median(np.abs(d - med), axis=1) / np.sqrt(2.0)
    span = x.max(axis=1) - x.min(axis=1)
    floor = np.maximum(0.01 * span, 1e-12)
    out: F64Array = np.maximum(sigma, floor)
    return out


def best_split(csum: F64Array, end: IdxArray, sigma: F64Array) -> tuple[IdxArray, F64Array]:
    """The best single mean-shift split of each row's segment [0, end).

    `csum` is the rows' cumulative sum. The statistic for a split at k (the new mean
    starts at k) is the likelihood ratio of one shift under Gaussian noise:
    sqrt(k (e - k) / e) |mean[0:k] - mean[k:e]| / sigma. Returns (k, statistic);
    rows with a segment shorter than 2 get k = 0 and statistic 0.
    """
    s, t = csum.shape
    k = np.arange(1, t, dtype=np.float64)[None, :]  # (1, T-1)
    e = end.astype(np.float64)[:, None]
    left = csum[:, :-1]
    total = csum[np.arange(s), np.maximum(end - 1, 0)][:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        diff = left / k - (total - left) / (e - k)
        stat = np.sqrt(k * (e - k) / e) * np.abs(diff) / sigma[:, None]
    stat = np.where(k < e, stat, -np.inf)
    best = stat.argmax(axis=1)
    value = stat[np.arange(s), best]
    ok = np.isfinite(value) & (end >= 2)
    return np.where(ok, best + 1, 0).astype(np.intp), np.where(ok, value, 0.0)


def earliest_change(
    x: F64Array, sigma: F64Array, threshold: float, refine: int = 3
) -> tuple[IdxArray, F64Array, F64Array]:
    """The earliest significant mean shift of each row, by binary segmentation to the left.

    Returns (index where the new level starts or 0 if none, statistic of the first
    split, signed shift in sigmas across the change).
    """
    s, t = x.shape
    csum = np.cumsum(x, axis=1)
    k, stat = best_split(csum, np.full(s, t, dtype=np.intp), sigma)
    found = stat >= threshold
    k = np.where(found, k, 0)
    # Refine only the rows that changed: usually a handful out of a thousand.
    rows = np.flatnonzero(found)
    for _ in range(refine):
        if rows.size == 0:
            break
        k2, stat2 = best_split(csum[rows], k[rows], sigma[rows])
        better = (stat2 >= threshold) & (k2 > 0)
        k[rows[better]] = k2[better]
        rows = rows[better]
    return k, np.where(found, stat, 0.0), _shift(x, csum, k, sigma)


def _shift(x: F64Array, csum: F64Array, k: IdxArray, sigma: F64Array) -> F64Array:
    """(mean after k - mean before k) / sigma; 0 where k is 0."""
    s, t = x.shape
    rows = np.arange(s)
    kk = np.maximum(k, 1)
    before = csum[rows, kk - 1] / kk
    after = (csum[:, -1] - csum[rows, kk - 1]) / np.maximum(t - kk, 1)
    return np.where(k > 0, (after - before) / sigma, 0.0)


def ranks(x: F64Array) -> F64Array:
    """Per-row ranks, ties given their average rank (as Spearman's rho needs)."""
    s, t = x.shape
    order = np.argsort(x, axis=1)
    srt = np.take_along_axis(x, order, axis=1)
    pos = np.broadcast_to(np.arange(t), (s, t))
    new_run = np.ones((s, t), dtype=bool)
    new_run[:, 1:] = srt[:, 1:] != srt[:, :-1]
    start = np.maximum.accumulate(np.where(new_run, pos, 0), axis=1)
    last_of_run = np.ones((s, t), dtype=bool)
    last_of_run[:, :-1] = new_run[:, 1:]
    end = np.minimum.accumulate(np.where(last_of_run, pos, t - 1)[:, ::-1], axis=1)[:, ::-1]
    out = np.empty((s, t))
    np.put_along_axis(out, order, (start + end) / 2.0, axis=1)
    return out


def correlate(x: F64Array, y: F64Array) -> F64Array:
    """Pearson's r of each row of x with y; 0 where either is constant."""
    xc = x - x.mean(axis=1, keepdims=True)
    yc = y - y.mean()
    den = np.sqrt((xc * xc).sum(axis=1) * float((yc * yc).sum()))
    num = xc @ yc
    with np.errstate(divide="ignore", invalid="ignore"):
        r = num / den
    return np.where(den > 1e-12, r, 0.0)
