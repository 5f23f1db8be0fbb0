"""The fleet detectors besides the temporal one: peers, trend, reachability, services."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from cdnops.config.detect import DetectConfig
from cdnops.detect.columns import Columns
from cdnops.detect.windows import F32, STATE_DTYPE
from cdnops.model import BoolArray, CodeArray, PollFailure, ServiceStatus

_MAD_TO_SIGMA = 1.4826  # MAD of a normal distribution times this is its standard deviation


class SiteGroups:
    """Rows grouped by site in a padded (sites, metrics, width) block, built once per inventory.

    Peers need a median and a spread per site and metric at every tick; one gather of the
    values into the padded block (NaN padding, which sorts last) and one in-place sort give
    all of them.
    """

    def __init__(self, site_index: npt.NDArray[np.intp], n_sites: int, m: int) -> None:
        n = len(site_index)
        order = np.argsort(site_index, kind="stable")
        counts = np.bincount(site_index, minlength=n_sites) if n else np.zeros(n_sites, np.intp)
        self.n_sites, self.m = n_sites, m
        self.width = int(counts.max()) if n else 0
        starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
        sorted_sites = site_index[order]
        slot = np.empty(n, np.intp)
        slot[order] = np.arange(n) - starts[sorted_sites]
        # flat index into the values (n * m, then one NaN) of each cell of the block
        src = np.full((n_sites, m, self.width), n * m, np.intp)
        cols = np.arange(m)
        src[site_index[:, None], cols[None, :], slot[:, None]] = np.arange(n)[:, None] * m + cols
        self.src = src.reshape(-1)
        self.site_index = site_index
        self.sizes = counts.astype(np.intp)
        self._xm = np.empty(n * m + 1, STATE_DTYPE)
        self._block = np.empty((n_sites, m, self.width), STATE_DTYPE)

    def medians(self, x: F32, out: npt.NDArray[np.intp]) -> tuple[F32, F32, npt.NDArray[np.intp]]:
        """Per site and column: median of x without the flat cells `out`, its robust spread
        (half the interquartile range), and how many values were used.

        Half the interquartile range equals the MAD for a symmetric distribution (both are
        0.6745 sigma for a normal one) and comes from the same sorted block as the median,
        where the MAD needed a second sort of the deviations."""
        xm, block = self._xm, self._block
        xm[:-1] = x.reshape(-1)
        xm[out] = np.float32(np.nan)
        xm[-1] = np.float32(np.nan)
        # every index is in range by construction; "clip" skips numpy's per-element check,
        # which costs more than the gather itself
        np.take(xm, self.src, out=block.reshape(-1), mode="clip")
        block.sort(axis=-1)
        # values per site and column: the site's size less its left-out cells (few)
        m = self.m
        left = np.bincount(self.site_index[out // m] * m + out % m, minlength=self.n_sites * m)
        count = self.sizes[:, None] - left.reshape(self.n_sites, m)
        med = _sorted_quantile(block, count, 0.5)
        spread = _sorted_quantile(block, count, 0.75)
        spread -= _sorted_quantile(block, count, 0.25)
        spread *= np.float32(0.5)
        return med, spread, count


def _sorted_quantile(s: F32, count: npt.NDArray[np.intp], q: float) -> F32:
    """The q-quantile (linear interpolation, as `np.quantile`) along the last axis of a
    block sorted with NaN last, of its first `count` values; NaN where it is empty."""
    if s.shape[-1] == 0:
        return np.full(s.shape[:-1], np.nan, STATE_DTYPE)
    pos = np.maximum(count - 1, 0) * q
    lo = np.floor(pos).astype(np.intp)
    hi = np.minimum(lo + 1, np.maximum(count - 1, 0))
    frac = (pos - lo).astype(STATE_DTYPE)
    a = np.take_along_axis(s, lo[..., None], axis=-1)[..., 0]
    b = np.take_along_axis(s, hi[..., None], axis=-1)[..., 0]
    out: F32 = (a + frac * (b - a)).astype(STATE_DTYPE, copy=False)
    np.copyto(out, np.float32(np.nan), where=count == 0)
    return out


@dataclass(frozen=True, slots=True)
class PeerView:
    """One tick's comparison of every appliance with its site."""

    z: F32  # (n, m) robust z-score against the site median, NaN without a verdict
    median: F32  # (sites, m)
    count: npt.NDArray[np.intp]  # (sites, m) serving appliances with a value


def compare_peers(
    groups: SiteGroups, x: F32, ok: BoolArray, cfg: DetectConfig, cols: Columns
) -> PeerView:
    """Robust z of each value against its site's median and MAD at this tick.

    `ok` marks the values that may be part of a site's baseline (valid, serving, on a
    metric compared with peers); sites with fewer than `min_peers` of them give no verdict.
    """
    out = np.flatnonzero(~ok)  # cells that are not part of any comparison
    med, spread, count = groups.medians(x, out)
    p = cfg.peers
    sigma = np.maximum(spread * np.float32(_MAD_TO_SIGMA), np.abs(med) * np.float32(p.rel_floor))
    np.maximum(sigma, np.float32(p.abs_floor), out=sigma)
    np.maximum(sigma, np.sqrt(cols.min_var), out=sigma)
    # a NaN centre gives NaN z-scores: no verdict where the site is too small
    centre = np.where(count < p.min_peers, np.float32(np.nan), med)
    site = groups.site_index
    z = np.subtract(x, np.take(centre, site, axis=0, mode="clip"))
    z /= np.take(sigma, site, axis=0, mode="clip")
    z.reshape(-1)[out] = np.float32(np.nan)
    return PeerView(z=z, median=med, count=count)


class TrendState:
    """Holt level and slope for the metrics with a ceiling; projects the time to reach it."""

    def __init__(self, shape: tuple[int, int], ticks: int) -> None:
        self.level = np.zeros(shape, STATE_DTYPE)
        self.slope = np.zeros(shape, STATE_DTYPE)  # per tick
        self.count = np.zeros(shape, np.int32)
        self.resid = np.zeros(shape, STATE_DTYPE)  # variance of the one-step forecast error
        # the slope averaged 4x longer: a step raises the short slope for a while, this one
        # only by step / (4 ticks); a leak raises both for good
        self.slope_slow = np.zeros(shape, STATE_DTYPE)
        self.gamma = np.float32(1.0 / (4 * ticks))
        self.alpha = np.float32(2.0 / (ticks + 1))
        self.beta = np.float32(2.0 / (ticks + 1))

    def update(self, x: F32, valid: BoolArray) -> None:
        """Fold one tick in; cells without a value keep their level and slope.

        Every cell is computed and the few without a value are put back afterwards, which
        is cheaper than masking each step."""
        fields = (self.level, self.slope, self.resid, self.slope_slow, self.count)
        bad = np.flatnonzero(~valid)
        saved = [f.reshape(-1)[bad] for f in fields]
        first = np.flatnonzero(valid & (self.count == 0))
        pred = self.level + self.slope
        err = np.subtract(x, pred)
        sq = err * err
        sq -= self.resid
        sq *= self.beta
        self.resid += sq
        err *= self.alpha
        err += pred  # the new level
        np.subtract(err, self.level, out=pred)  # its step
        pred -= self.slope
        pred *= self.beta
        self.slope += pred
        self.level[...] = err
        np.subtract(self.slope, self.slope_slow, out=pred)
        pred *= self.gamma
        self.slope_slow += pred
        self.count += 1
        for f, v in zip(fields, saved, strict=True):
            f.reshape(-1)[bad] = v
        if first.size:
            # a first value is the level; there is no step to learn a slope from
            for f in (self.slope, self.resid, self.slope_slow):
                f.reshape(-1)[first] = 0.0
            self.level.reshape(-1)[first] = x.reshape(-1)[first]


def reach_thresholds(cfg: DetectConfig) -> npt.NDArray[np.int32]:
    """Consecutive failures that make an appliance unreachable, indexed by `PollFailure`."""
    r = cfg.reachability
    out = np.full(len(PollFailure), r.failures, np.int32)
    for code in PollFailure:
        out[code] = r.by_reason.get(code.reason, r.failures)
    out[PollFailure.OK] = np.iinfo(np.int32).max
    return out


def count_runs(runs: npt.NDArray[np.int32], hit: BoolArray) -> None:
    """Consecutive-tick counters: +1 where hit, back to 0 elsewhere."""
    runs += 1
    runs *= hit


def failed_services(status: CodeArray, cols: npt.NDArray[np.intp], width: int) -> BoolArray:
    """(n, width) True where a service is reported failed; frame column j goes to `cols[j]`."""
    out = np.zeros((status.shape[0], width), np.bool_)
    out[:, cols] = status[:, : len(cols)] == ServiceStatus.FAILED
    return out
