"""The detection engine: one vectorized pass over the fleet per tick, anomalies with hysteresis."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from cdnops.config.detect import DetectConfig
from cdnops.detect import persist
from cdnops.detect.columns import Columns
from cdnops.detect.detectors import (
    PeerView,
    SiteGroups,
    TrendState,
    compare_peers,
    count_runs,
    failed_services,
    reach_thresholds,
)
from cdnops.detect.heap import keep_heap
from cdnops.detect.hysteresis import Hysteresis
from cdnops.detect.report import Reporter
from cdnops.detect.seasonal import SeasonalState
from cdnops.detect.windows import F32, STATE_DTYPE, TemporalParams, TemporalState
from cdnops.model import (
    Anomaly,
    ApplianceState,
    BoolArray,
    DetectionResult,
    FleetFrame,
    Inventory,
    PollFailure,
)

log = logging.getLogger("cdnops.detect")

QUIET_NEVER = 1 << 30  # ticks since a counter rose, for one that never did


@dataclass(frozen=True, slots=True)
class Verdicts:
    """One tick's per-detector verdicts on the (n, m) metric cells."""

    x: F32
    valid: BoolArray
    temporal: BoolArray
    peers: BoolArray
    bounds: BoolArray
    counter: BoolArray
    trend: BoolArray
    eta_s: F32  # (n, len(trend_cols)) projected seconds to the ceiling
    peer_view: PeerView | None
    score: F32


class DetectionEngine:
    """Keeps rolling state per appliance x metric and judges every tick of the fleet.

    Pure CPU: `update` does no I/O and loops in Python only over the few cells whose
    anomaly enters or clears. `save`/`load` carry the state across a restart.
    """

    def __init__(self, config: DetectConfig, metrics: Sequence[str]) -> None:
        keep_heap()  # a tick's large temporaries are reused, not faulted in afresh
        self.config = config
        self.cols = Columns.build(config, metrics)
        self._params = TemporalParams.from_config(config.temporal, config.warmup_ticks)
        self._reach_thr = reach_thresholds(config)
        self._tiles: dict[str, npt.NDArray[Any]] = {}
        self.counter_cols = np.flatnonzero(np.isfinite(self.cols.counter_limit))
        self.reporter = Reporter(self)
        self.reset()

    def reset(self, ids: tuple[str, ...] = (), services: tuple[str, ...] = ()) -> None:
        """Start cold, with empty state rows for `ids` and columns for `services`."""
        self._ids = ids
        self._inventory: Inventory | None = None
        self._groups: SiteGroups | None = None
        self._services = services
        self._frame_services: tuple[str, ...] = ()
        self._svc_cols = np.zeros(0, np.intp)  # frame service column -> our column
        self.tick_s = 0.0  # smoothed seconds between ticks
        self._last_ts: float | None = None
        self._allocate(len(ids))
        self.reporter.restore(())

    def _allocate(self, n: int) -> None:
        m, k, h = len(self.cols.metrics), len(self.cols.trend_cols), self.config.hysteresis
        s, svc = len(self._services), self.config.services
        self.temporal = TemporalState((n, m), self._params)
        self.seasonal = SeasonalState((n, m), self.config.seasonal)
        self.trend = TrendState((n, k), self.config.trend_ticks)
        self.reach_runs = np.zeros(n, np.int32)  # consecutive ticks with a failed poll
        self.reach_polls = np.zeros(n, np.int32)  # consecutive failed polls, this tick
        # per counter column: ticks since it last rose, and the rate it rose at then
        kc = len(self.counter_cols)
        self.counter_quiet = np.full((n, kc), QUIET_NEVER, np.int32)
        self.counter_rate = np.zeros((n, kc), STATE_DTYPE)
        self.service_runs = np.zeros((n, s), np.int32)
        self.h_metric = Hysteresis((n, m), h.enter_ticks, h.window_ticks, h.clear_ticks)
        self.h_reach = Hysteresis((n,), 1, 1, 1)
        self.h_service = Hysteresis((n, s), 1, 1, svc.clear_ticks)

    @property
    def ids(self) -> tuple[str, ...]:
        """Appliance id of each state row."""
        return self._ids

    @property
    def services(self) -> tuple[str, ...]:
        """Service names of the service state columns."""
        return self._services

    def update(self, frame: FleetFrame) -> DetectionResult:
        """Judge one tick of the fleet and return scores and anomalies."""
        self._sync_rows(frame)
        self._sync_services(frame.services)
        self._tick_time(frame.ts)
        v = self._metric_verdicts(frame)
        fired = v.temporal | v.peers
        fired |= v.bounds
        fired |= v.counter
        if v.trend.any():  # rare: a fancy column update costs more than the rest together
            rows, k = np.nonzero(v.trend)
            fired[rows, self.cols.trend_cols[k]] = True
        m_in, m_out = self.h_metric.update(fired)
        down = frame.failure != PollFailure.OK
        count_runs(self.reach_runs, down)
        no_news = frame.failure == PollFailure.NOT_POLLED
        self._count_polls(frame, no_news)
        unreachable = self.config.reachability.enabled & (
            (self.reach_polls >= self._reach_thr[frame.failure])
            # a tick without a finished poll neither confirms nor clears an unreachable one
            | (no_news & self.h_reach.active)
        )
        r_in, r_out = self.h_reach.update(unreachable)
        failed = failed_services(frame.service_status, self._svc_cols, len(self._services))
        count_runs(self.service_runs, failed)
        svc_fire = self.config.services.enabled & (
            self.service_runs >= self.config.services.failed_ticks
        )
        s_in, s_out = self.h_service.update(svc_fire)
        result = self.reporter.report(frame, v, (m_in, m_out), (r_in, r_out), (s_in, s_out))
        firing = fired.any(axis=1)
        firing |= down
        firing |= failed.any(axis=1)
        return replace(result, firing=firing)

    def _count_polls(self, frame: FleetFrame, no_news: BoolArray) -> None:
        """Consecutive failed polls: the poller's count where it gives one (its re-polls
        confirm a failure within a tick), never fewer than the failed ticks; a tick without
        a finished poll (`not_polled`) counts as one."""
        streak = frame.fail_streak
        if streak is None or streak.shape != self.reach_runs.shape:
            np.copyto(self.reach_polls, self.reach_runs)
            return
        np.maximum(streak, self.reach_runs, out=self.reach_polls)
        np.copyto(self.reach_polls, self.reach_runs, where=no_news)

    def _tick_time(self, ts: float) -> None:
        if self._last_ts is not None and ts > self._last_ts:
            dt = ts - self._last_ts
            self.tick_s = dt if self.tick_s <= 0 else 0.9 * self.tick_s + 0.1 * dt
        self._last_ts = ts

    def _values(self, frame: FleetFrame) -> tuple[F32, BoolArray]:
        idx = self.cols.index_of(frame.metrics)
        # C order: the detectors address cells by flat index
        x = frame.values.astype(STATE_DTYPE, order="C")
        valid = np.ascontiguousarray(frame.valid & np.isfinite(x))
        if idx is None:
            return x, valid
        present = idx >= 0
        safe = np.where(present, idx, 0)
        return np.ascontiguousarray(x[:, safe]), np.ascontiguousarray(valid[:, safe] & present)

    def _metric_verdicts(self, frame: FleetFrame) -> Verdicts:
        cfg, cols = self.config, self.cols
        x, valid = self._values(frame)
        serving = frame.state == ApplianceState.SERVING
        all_serving = bool(serving.all())
        learn = valid if all_serving else valid & ~(~serving[:, None] & cols.traffic)
        # the temporal detector judges the value less its usual departure at this time of week
        xs = self.seasonal.adjust(x, learn, frame.ts)
        likelihood, score, surprise = self.temporal.update(
            xs, learn, cols.up, cols.down, cols.min_var, self.seasonal.surprise_scale()
        )
        judged = self._judged(learn)
        # the usual peaks learn from series past their warm-up (and those without a temporal
        # verdict, whose peaks are never used: cheaper than leaving them out every tick)
        young = self.temporal.oldest <= cfg.warmup_ticks
        self.seasonal.note_surprise(surprise, judged if young else None)
        # improbable *and* far from the baseline: a quiet series' small wobble is improbable
        # but not worth an operator's attention; both are rare, so look at those cells only
        cand = np.flatnonzero(surprise >= np.float32(cfg.temporal.min_z))
        cand = cand[
            judged.reshape(-1)[cand]
            & (likelihood.reshape(-1)[cand] >= np.float32(cfg.temporal.threshold))
        ]
        np.copyto(score, np.float32(np.nan), where=~judged)
        bounds, counter, hard = self._limits(x, learn)
        self._hold_counters(x, counter)
        peers = np.zeros_like(valid)
        view = self._peers(x, learn if all_serving else learn & serving[:, None])
        if view is not None:
            peers, cand = self._score_peers(view, score, cand)
        temporal = np.zeros(valid.shape, np.bool_)
        temporal.reshape(-1)[cand] = True
        trend, eta = self._trend(x, learn, score)
        score.reshape(-1)[hard] = np.float32(1.0)
        return Verdicts(x, valid, temporal, peers, bounds, counter, trend, eta, view, score)

    def _limits(
        self, x: F32, learn: BoolArray
    ) -> tuple[BoolArray, BoolArray, npt.NDArray[np.intp]]:
        """Bounds and counter verdicts, and the flat indices of the cells either fired on.
        One comparison against the lower of the two upper limits finds the few candidates;
        which limit they crossed is then decided on those cells only."""
        cols = self.cols
        over = x > self._tiled("hard_above", x.shape[0])
        over |= x < self._tiled("below", x.shape[0])
        over &= learn
        hard = np.flatnonzero(over)
        j = hard % x.shape[1]
        xs = x.reshape(-1)[hard]
        bounds, counter = np.zeros(learn.shape, np.bool_), np.zeros(learn.shape, np.bool_)
        bounds.reshape(-1)[hard] = (xs > cols.above[j]) | (xs < cols.below[j])
        counter.reshape(-1)[hard] = xs > cols.counter_limit[j]
        return bounds, counter, hard

    def _hold_counters(self, x: F32, counter: BoolArray) -> None:
        """Hold each counter verdict `counter_hold_ticks` after the counter last rose: the
        rate between two polls is 0 between the steps of a slowly rising counter."""
        cc = self.counter_cols
        if not len(cc):
            return
        quiet = self.counter_quiet
        np.minimum(quiet, QUIET_NEVER - 1, out=quiet)
        quiet += 1
        rose = np.take(counter, cc, axis=1)
        if rose.any():
            quiet[rose] = 0
            self.counter_rate[rose] = np.take(x, cc, axis=1)[rose]
        held = quiet < self.config.counter_hold_ticks
        if held.any():
            rows, k = np.nonzero(held)
            counter[rows, cc[k]] = True

    def _tiled(self, name: str, n: int) -> npt.NDArray[Any]:
        """A per-column constant of `Columns` as a whole (n, columns) array: numpy runs an
        operation against a short broadcast row several times slower than one between two
        arrays of the same shape."""
        arr = self._tiles.get(name)
        if arr is None or arr.shape[0] != n:
            row = getattr(self.cols, name)
            arr = np.ascontiguousarray(np.broadcast_to(row, (n, len(row))))
            self._tiles[name] = arr
        return arr

    def _judged(self, learn: BoolArray) -> BoolArray:
        """Cells the temporal detector gives a verdict on: learned from, warmed up, enabled."""
        cols = self.cols
        if self.temporal.oldest > self.config.warmup_ticks:
            return learn if cols.temporal.all() else learn & self._tiled("temporal", len(learn))
        out: BoolArray = learn & (self.temporal.count > self.config.warmup_ticks)
        out &= self._tiled("temporal", len(learn))
        return out

    def _score_peers(
        self, view: PeerView, score: F32, cand: npt.NDArray[np.intp]
    ) -> tuple[BoolArray, npt.NDArray[np.intp]]:
        """Peers verdicts, their score folded into `score`, and the temporal candidates that
        survive the site confirmation."""
        cols, p = self.cols, self.config.peers
        n = score.shape[0]
        dz = np.multiply(view.z, self._tiled("up", n))
        np.fmax(dz, np.multiply(view.z, self._tiled("neg_down", n)), out=dz)
        peers: BoolArray = dz >= np.float32(p.z)
        z2 = np.multiply(dz, dz, out=dz)
        z2 /= z2 + np.float32(p.z) ** 2
        np.fmax(score, z2, out=score)
        # traffic moves with demand, site-wide: only departures from the site count
        m = score.shape[1]
        need = cols.traffic[cand % m]
        zc = view.z.reshape(-1)[cand]
        dzc = np.fmax(zc * cols.up[cand % m], zc * cols.neg_down[cand % m])
        keep = ~need | (dzc >= np.float32(p.confirm_z)) | np.isnan(zc)
        return peers, cand[keep]

    def _peers(self, x: F32, ok: BoolArray) -> PeerView | None:
        """The site comparison, when some site is large enough for a verdict."""
        cfg, groups = self.config, self._groups
        if not cfg.peers.enabled or groups is None or not self.cols.peers.any():
            return None
        if groups.width < cfg.peers.min_peers:
            return None
        return compare_peers(groups, x, ok & self._tiled("peers", len(ok)), cfg, self.cols)

    def _trend(self, x: F32, learn: BoolArray, score: F32) -> tuple[BoolArray, F32]:
        """Trend verdicts and projected seconds to the ceiling; the trend's score goes into
        `score`. Only cells projected to reach their ceiling within twice the horizon have
        a score above 0 or a verdict, so the rest of the work is done on those only."""
        cols, tc, tr = self.cols, self.cols.trend_cols, self.trend
        n, k = x.shape[0], len(tc)
        if not k:
            return np.zeros((n, 0), np.bool_), np.zeros((n, 0), STATE_DTYPE)
        # np.take keeps C order (x[:, tc] would be column-major, and every step against the
        # row-major state would then walk memory with a stride)
        ok = np.take(learn, tc, axis=1, mode="clip")
        tr.update(np.take(x, tc, axis=1, mode="clip"), ok)
        if self.temporal.oldest <= self.config.warmup_ticks or not cols.temporal[tc].all():
            # a trend cell that no other detector judged scores 0, not "nothing judged"
            sub = score[:, tc]
            np.copyto(sub, np.float32(0.0), where=ok & np.isnan(sub))
            score[:, tc] = sub
        tick = self.tick_s or 1.0
        slope = np.minimum(tr.slope, tr.slope_slow)
        gap = np.subtract(self._tiled("ceiling", n), tr.level)
        reach = np.multiply(slope, self._tiled("horizon_s", n))
        reach *= np.float32(2.0 / tick)
        near = (slope > 0) & (gap < reach)
        idx = np.flatnonzero(near)
        eta = np.full((n, k), np.inf, STATE_DTYPE)
        rows, ck = np.divmod(idx, k)
        s_i = slope.reshape(-1)[idx]
        e = (gap.reshape(-1)[idx] / s_i * np.float32(tick)).astype(STATE_DTYPE)
        eta.reshape(-1)[idx] = e
        use = ok.reshape(-1)[idx]
        j = tc[ck]
        part = np.clip(1.0 - e / (2.0 * cols.horizon_s[ck]), 0.0, 1.0)
        score[rows[use], j[use]] = np.fmax(score[rows[use], j[use]], part[use])
        # a steady rise: above 3 sigma of the forecast error over the smoothing window
        steady = s_i * np.float32(self.config.trend_ticks) > 3.0 * np.sqrt(
            tr.resid.reshape(-1)[idx]
        )
        fire = use & steady & (tr.count.reshape(-1)[idx] > self.config.warmup_ticks)
        fire &= (tr.level.reshape(-1)[idx] < cols.ceiling[ck]) & (e <= cols.horizon_s[ck])
        trend = np.zeros((n, k), np.bool_)
        trend.reshape(-1)[idx[fire]] = True
        return trend, eta

    def _sync_rows(self, frame: FleetFrame) -> None:
        """Remap state rows by appliance id when the inventory changed."""
        inv = frame.inventory
        if inv is self._inventory:
            return
        ids = tuple(a.id for a in inv.appliances)
        if ids != self._ids:
            old = {a: i for i, a in enumerate(self._ids)}
            rows = np.array([old.get(a, -1) for a in ids], np.intp)
            self._take(rows, rows >= 0, ids)
        self._inventory = inv
        self._groups = SiteGroups(
            frame.site_index.astype(np.intp), len(frame.sites), len(self.cols.metrics)
        )
        self.reporter.reindex(inv, frame.sites, frame.site_index)

    def _take(self, rows: np.ndarray, keep: BoolArray, ids: tuple[str, ...]) -> None:
        safe = np.where(keep, rows, 0)
        self.temporal.take(safe, keep)
        self.seasonal.take(safe, keep)
        for name in ("level", "slope", "count", "resid", "slope_slow"):
            arr = getattr(self.trend, name)
            new = np.zeros((len(ids), *arr.shape[1:]), arr.dtype)
            new[keep] = arr[safe[keep]]
            setattr(self.trend, name, new)
        for name, fill in (
            ("reach_runs", 0),
            ("reach_polls", 0),
            ("service_runs", 0),
            ("counter_quiet", QUIET_NEVER),
            ("counter_rate", 0),
        ):
            arr = getattr(self, name)
            new = np.full((len(ids), *arr.shape[1:]), fill, arr.dtype)
            new[keep] = arr[safe[keep]]
            setattr(self, name, new)
        for h in (self.h_metric, self.h_reach, self.h_service):
            h.take(safe, keep)
        dropped = set(self._ids) - set(ids)
        self.reporter.forget(dropped)
        self._ids = ids

    def _sync_services(self, names: tuple[str, ...]) -> None:
        """Our service columns only grow; new names get new columns, in any frame order."""
        if names == self._frame_services:
            return
        merged = self._services + tuple(n for n in names if n not in self._services)
        self._frame_services = names
        self._svc_cols = np.array([merged.index(n) for n in names], np.intp)
        if merged == self._services:
            return
        self._services = merged
        n, s = len(self._ids), len(merged)
        new = np.zeros((n, s), np.int32)
        new[:, : self.service_runs.shape[1]] = self.service_runs
        self.service_runs = new
        self.h_service.grow((n, s))

    @property
    def active(self) -> tuple[Anomaly, ...]:
        """The anomalies active after the last tick."""
        return self.reporter.active

    def save(self, path: Path) -> None:
        """Write the state so a restarted daemon does not start cold."""
        persist.save(self, path)

    @classmethod
    def load(cls, path: Path, config: DetectConfig, metrics: Sequence[str]) -> DetectionEngine:
        """An engine with the state saved at `path`, or a fresh one (with a warning) if the
        file is missing, corrupt or was written for other metrics."""
        engine = cls(config, metrics)
        persist.restore(engine, path)
        return engine
