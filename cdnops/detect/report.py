"""Turns the cells that entered or cleared hysteresis into `Anomaly` objects and log lines."""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Iterable
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from cdnops.detect import explain
from cdnops.model import (
    Anomaly,
    BoolArray,
    DetectionResult,
    Detector,
    FleetFrame,
    IntArray,
    Inventory,
    PollFailure,
)

if TYPE_CHECKING:
    from cdnops.detect.engine import DetectionEngine, Verdicts

log = logging.getLogger("cdnops.detect")
Key = tuple[str, str]  # (appliance id, metric / `reachability` / `service:<name>`)
Pair = tuple[BoolArray, BoolArray]  # (entered, cleared)
# Frame timestamps kept to date an anomaly's first evidence: enough for the hysteresis
# window (<= 16) and the usual failed-poll and failed-service runs; longer runs are
# dated from the smoothed tick length.
TS_RING = 64


class Reporter:
    """Holds the active anomalies by (appliance, metric) and explains new ones."""

    def __init__(self, engine: DetectionEngine) -> None:
        self.engine = engine
        self._active: dict[Key, Anomaly] = {}
        self._active_cache: tuple[Anomaly, ...] | None = None  # rebuilt only after changes
        self._gone: list[Anomaly] = []  # active anomalies of appliances removed from inventory
        self._ids: tuple[str, ...] = ()
        self._sites: tuple[str, ...] = ()
        self._site_index: IntArray = np.zeros(0, np.int32)
        self._ts: deque[float] = deque(maxlen=TS_RING)  # the last ticks' frame.ts, newest last

    @property
    def active(self) -> tuple[Anomaly, ...]:
        """Every anomaly active after the last tick."""
        if self._active_cache is None:
            self._active_cache = tuple(self._active.values())
        return self._active_cache

    def restore(self, anomalies: Iterable[Anomaly]) -> None:
        """Reinstate the anomalies that were active when the state was saved."""
        self._active = {(a.appliance, a.metric): a for a in anomalies}
        self._active_cache = None

    def reindex(self, inv: Inventory, sites: tuple[str, ...], site_index: IntArray) -> None:
        """Follow the row order of a new inventory."""
        self._ids = tuple(a.id for a in inv.appliances)
        self._sites = sites
        self._site_index = site_index

    def forget(self, ids: set[str]) -> None:
        """Anomalies of removed appliances are reported cleared on the next tick."""
        for key in [k for k in self._active if k[0] in ids]:
            self._gone.append(self._active.pop(key))
            self._active_cache = None

    def report(self, frame: FleetFrame, v: Verdicts, m: Pair, r: Pair, s: Pair) -> DetectionResult:
        """Build this tick's result from the hysteresis transitions."""
        self._ts.append(frame.ts)
        entered: list[Anomaly] = []
        cleared, self._gone = self._gone, []
        cells = _cells(m[0])
        if cells:
            ages = self.engine.h_metric.first_fired_ago(m[0])
            entered += [
                self._metric(frame, v, i, j, int(k)) for (i, j), k in zip(cells, ages, strict=True)
            ]
        entered += [self._reach(frame, i) for i, _ in _cells(r[0])]
        entered += [self._service(frame, i, c) for i, c in _cells(s[0])]
        cleared += self._clear(m[1], r[1], s[1])
        for a in entered:
            self._active[(a.appliance, a.metric)] = a
            self._active_cache = None
            log.info(
                "anomaly entered appliance=%s site=%s metric=%s detector=%s score=%.2f: %s",
                a.appliance,
                a.site,
                a.metric,
                a.detector.value,
                a.score,
                a.explanation,
            )
        return DetectionResult(
            ts=frame.ts,
            seq=frame.seq,
            scores=v.score.astype(np.float64),
            active=self.active,
            entered=tuple(entered),
            cleared=tuple(cleared),
        )

    def _clear(self, m: BoolArray, r: BoolArray, s: BoolArray) -> list[Anomaly]:
        """Drop the anomalies whose cells cleared; returns them, logged."""
        metrics, services = self.engine.cols.metrics, self.engine.services
        keys = [(self._ids[i], metrics[j]) for i, j in _cells(m)]
        keys += [(self._ids[i], "reachability") for i, _ in _cells(r)]
        keys += [(self._ids[i], f"service:{services[c]}") for i, c in _cells(s)]
        cleared = []
        for key in keys:
            gone = self._active.pop(key, None)
            if gone is not None:
                self._active_cache = None
                cleared.append(gone)
                log.info(
                    "anomaly cleared appliance=%s site=%s metric=%s detector=%s",
                    gone.appliance,
                    gone.site,
                    gone.metric,
                    gone.detector.value,
                )
        return cleared

    def _new(self, frame: FleetFrame, i: int, metric: str, det: Detector, ago: int) -> Anomaly:
        site = self._sites[int(self._site_index[i])]
        onset = self._ts_ago(frame, ago)
        return Anomaly(
            self._ids[i], site, metric, det, math.nan, math.nan, 1.0, frame.ts, "", onset
        )

    def _ts_ago(self, frame: FleetFrame, ago: int) -> float:
        """The timestamp of the tick `ago` ticks before this one (0: this one)."""
        ago = max(ago, 0)
        if ago < len(self._ts):
            return self._ts[-1 - ago]
        # older than the ring (or the ring is new after a restart): estimate
        return frame.ts - ago * self.engine.tick_s

    def _metric(self, frame: FleetFrame, v: Verdicts, i: int, j: int, ago: int) -> Anomaly:
        metric = self.engine.cols.metrics[j]
        base = self._new(frame, i, metric, Detector.TEMPORAL, ago)
        value = float(v.x[i, j])
        score = float(v.score[i, j]) if math.isfinite(v.score[i, j]) else 1.0
        det, baseline, text = self._explain_metric(v, i, j, metric, value)
        return replace(
            base, detector=det, value=value, baseline=baseline, score=score, explanation=text
        )

    def _explain_metric(
        self, v: Verdicts, i: int, j: int, metric: str, value: float
    ) -> tuple[Detector, float, str]:
        cols = self.engine.cols
        if v.bounds[i, j]:
            above, below = _opt(cols.above[j]), _opt(cols.below[j])
            limit = above if above is not None and value > above else below
            return Detector.BOUNDS, float(limit or 0.0), explain.bounds(metric, value, above, below)
        if v.counter[i, j]:
            limit = float(cols.counter_limit[j])
            if value > limit:
                return Detector.COUNTER, limit, explain.counter(metric, value, limit)
            c = int(np.flatnonzero(self.engine.counter_cols == j)[0])
            ago = int(self.engine.counter_quiet[i, c])
            rate = float(self.engine.counter_rate[i, c])
            return Detector.COUNTER, limit, explain.counter_held(metric, rate, limit, ago)
        k = np.flatnonzero(cols.trend_cols == j)
        if len(k) and v.trend[i, k[0]]:
            return self._explain_trend(v, i, int(k[0]), metric, value)
        view = v.peer_view
        if v.peers[i, j] and view is not None:
            s = int(self._site_index[i])
            med, count = float(view.median[s, j]), int(view.count[s, j])
            text = explain.peers(metric, value, float(view.z[i, j]), self._sites[s], med, count)
            return Detector.PEERS, med, text
        return self._explain_temporal(v, i, j, metric, value)

    def _explain_trend(
        self, v: Verdicts, i: int, k: int, metric: str, value: float
    ) -> tuple[Detector, float, str]:
        e = self.engine
        ceiling = float(e.cols.ceiling[k])
        slope = min(float(e.trend.slope[i, k]), float(e.trend.slope_slow[i, k]))
        per_h = slope / (e.tick_s or 1.0) * 3600.0
        text = explain.trend(metric, value, per_h, ceiling, float(v.eta_s[i, k]))
        return Detector.TREND, ceiling, text

    def _explain_temporal(
        self, v: Verdicts, i: int, j: int, metric: str, value: float
    ) -> tuple[Detector, float, str]:
        e, p = self.engine, self.engine.temporal.params
        a, cfg = e.temporal.arrays, e.config.temporal
        best: tuple[float, float, float, float, int] | None = None
        for mean_k, var_k, ticks in (
            ("mean_s", "var_s", cfg.slow_ticks),
            ("mean_f", "var_f", cfg.fast_ticks),
        ):
            mean, var = float(a[mean_k][i, j]), float(a[var_k][i, j])
            value_k = value - e.seasonal.baseline_offset(i, j)
            floor2 = max(p.abs_floor2, float(e.cols.min_var[j]))
            sd = math.sqrt(var + mean * mean * p.rel_floor2 + floor2)
            z = (value_k - mean) / sd if sd > 0 else 0.0
            bad = max(z * float(e.cols.up[j]), -z * float(e.cols.down[j]))
            if best is None or bad > best[0]:
                best = (bad, z, mean, sd, ticks)
        assert best is not None  # the loop runs twice
        _, z, mean, sd, ticks = best
        # the baseline of this time of the week or day, where a seasonal baseline is in use
        shift = e.seasonal.baseline_offset(i, j)
        mean += shift
        window = explain.duration(ticks * e.tick_s) if e.tick_s > 0 else f"{ticks}-tick"
        if shift:
            window += " " + e.seasonal.baseline_kind(i, j)
        view = v.peer_view
        site_med = None if view is None else float(view.median[int(self._site_index[i]), j])
        text = explain.temporal(metric, value, z, window, mean, sd, site_med)
        return Detector.TEMPORAL, mean, text

    def _reach(self, frame: FleetFrame, i: int) -> Anomaly:
        e = self.engine
        runs, reason = int(e.reach_polls[i]), PollFailure(int(frame.failure[i])).reason
        # the tick of the first failed poll of the run that crossed the threshold
        ticks = int(e.reach_runs[i])
        base = self._new(frame, i, "reachability", Detector.REACHABILITY, ticks - 1)
        limit = float(e._reach_thr[int(frame.failure[i])])
        return replace(
            base, value=float(runs), baseline=limit, explanation=explain.reachability(runs, reason)
        )

    def _service(self, frame: FleetFrame, i: int, c: int) -> Anomaly:
        name = self.engine.services[c]
        runs = int(self.engine.service_runs[i, c])
        base = self._new(frame, i, f"service:{name}", Detector.SERVICE, runs - 1)
        return replace(base, value=3.0, baseline=1.0, explanation=explain.service(name, runs))


def _cells(mask: BoolArray) -> list[tuple[int, int]]:
    """(row, column) of the True cells; most ticks have none, so check that first."""
    if not mask.any():
        return []
    if mask.ndim == 1:
        return [(int(i), 0) for i in np.flatnonzero(mask)]
    return [(int(i), int(j)) for i, j in zip(*np.nonzero(mask), strict=True)]


def _opt(v: np.float32) -> float | None:
    return None if math.isnan(v) else float(v)
