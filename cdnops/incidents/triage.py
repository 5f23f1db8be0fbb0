"""Post-alert triage: which signals changed first and most, in step with the trigger.

Runs in a thread pool: the work is a few numpy passes over a (signals x ticks) array
(cumulative sums, sorts, a matrix-vector product) that release the GIL, and the
window is handed over by reference; a process pool would pickle megabytes per call
and pay a process start for work that takes tens of milliseconds.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from cdnops.config.incidents import TriageConfig
from cdnops.incidents.changepoint import (
    F64Array,
    correlate,
    earliest_change,
    fill_gaps,
    noise_sigma,
    ranks,
)
from cdnops.incidents.history import HistoryWindow
from cdnops.incidents.model import Incident, Scope, TriageSignal
from cdnops.model import is_counter

MIN_TICKS = 8  # below this there is nothing to compare a change with
LEAD_SCALE_TICKS = 2.0
MIN_SHIFT_SIGMA = 3.0  # smaller level shifts are drift (a daily swing), not a change
STRENGTH_HALF_SIGMA = 5.0  # a shift of this many noise sigmas scores half the strength


@dataclass(frozen=True, slots=True)
class TriageJob:
    """What triage needs, copied off the tracker so the pool shares nothing mutable."""

    incident_id: str
    trigger_metric: str  # may be absent from the window (`reachability`, `service:...`)
    trigger_appliances: tuple[str, ...]
    trigger_ts: float  # when the incident's first anomaly entered
    window: HistoryWindow
    top: int
    threshold: float


def job_for(incident: Incident, window: HistoryWindow, config: TriageConfig) -> TriageJob:
    """The triage job of an incident over a history window."""
    trigger = incident.members if incident.scope is Scope.SITE else (incident.subject,)
    return TriageJob(
        incident_id=incident.id,
        trigger_metric=incident.metric,
        trigger_appliances=tuple(a for a in trigger if a in window.appliances),
        trigger_ts=incident.first_seen_ts,
        window=window,
        top=config.top_signals,
        threshold=config.min_change_sigma,
    )


def run_triage(job: TriageJob) -> list[TriageSignal]:
    """Rank every (appliance, metric) signal of the window; the trigger metric is not ranked.

    Score in [0, 1]: a significant earliest mean shift scores for its size and for
    how long before the trigger it came, saturating after a few ticks (after the
    trigger it is more likely a consequence than a cause), plus
    the larger of |Pearson| and |Spearman| with the trigger over the window. Signals
    without a significant change are not returned.
    """
    w = job.window
    t, r, m = w.values.shape
    if t < MIN_TICKS or r == 0 or m == 0:
        return []
    # (T, r, m) -> (r*m, T): one row per appliance x metric.
    x = np.ascontiguousarray(w.values.transpose(1, 2, 0), dtype=np.float64).reshape(r * m, t)
    filled, has_any = fill_gaps(x)
    names = [(a, metric) for a in w.appliances for metric in w.metrics]
    trig_series = _trigger_series(job, filled)
    sigma = noise_sigma(filled)
    k, _, shift = earliest_change(filled, sigma, job.threshold)
    trig_idx = _trigger_index(job, trig_series, w.ts)
    change_ts = np.where(k > 0, w.ts[np.clip(k, 0, t - 1)], np.nan)
    lead = w.ts[trig_idx] - change_ts
    corr_p, corr_s = _correlations(filled, trig_series)
    tick = max(float(np.median(np.diff(w.ts))), 1e-9)
    sig = (k > 0) & has_any & (np.abs(shift) >= MIN_SHIFT_SIGMA)
    score = _score(shift, lead, tick, np.maximum(np.abs(corr_p), np.abs(corr_s)))
    # Only signals that changed are worth a line; the trigger metric is the symptom itself.
    keep = sig & np.array([metric != job.trigger_metric for _, metric in names])
    order = [i for i in np.argsort(-score, kind="stable") if keep[i]][: job.top]
    return [
        _signal(job, names[i], float(change_ts[i]), float(lead[i]), float(shift[i]),
                float(corr_p[i]), float(corr_s[i]), float(score[i]))
        for i in order
    ]  # fmt: skip


def _score(shift: F64Array, lead: F64Array, tick: float, corr: F64Array) -> F64Array:
    # Strength is the size of the shift, not its statistic: over hundreds of points a
    # slow daily swing is "significant" but small against the noise.
    strength = np.abs(shift) / (np.abs(shift) + STRENGTH_HALF_SIGMA)
    # A few ticks of lead already tell cause from consequence; a change in the same
    # tick as the trigger is more likely a co-symptom, so the midpoint is one tick early.
    timing = 0.5 + 0.5 * np.tanh((np.nan_to_num(lead) - tick) / (LEAD_SCALE_TICKS * tick))
    score: F64Array = 0.35 * strength + 0.35 * timing + 0.3 * corr
    return score


def _trigger_series(job: TriageJob, filled: F64Array) -> F64Array | None:
    w = job.window
    if job.trigger_metric not in w.metrics or not job.trigger_appliances:
        return None
    j = w.metrics.index(job.trigger_metric)
    m = len(w.metrics)
    rows = [w.appliances.index(a) * m + j for a in job.trigger_appliances]
    # A site's symptom is the median of its members: robust to one odd appliance.
    series: F64Array = np.median(filled[rows], axis=0)
    return series


def _trigger_index(job: TriageJob, series: F64Array | None, ts: F64Array) -> int:
    """The tick the trigger changed at: its own change point, else the incident's first anomaly."""
    seen = int(np.clip(np.searchsorted(ts, job.trigger_ts), 0, len(ts) - 1))
    if series is None:
        return seen
    k, stat, _ = earliest_change(series[None, :], noise_sigma(series[None, :]), job.threshold)
    return int(k[0]) if stat[0] > 0 and 0 < k[0] <= seen else seen


def _correlations(x: F64Array, y: F64Array | None) -> tuple[F64Array, F64Array]:
    if y is None:
        zeros = np.zeros(x.shape[0])
        return zeros, zeros
    return correlate(x, y), correlate(ranks(x), ranks(y[None, :])[0])


def _signal(
    job: TriageJob,
    name: tuple[str, str],
    change_ts: float,
    lead: float,
    shift: float,
    pearson: float,
    spearman: float,
    score: float,
) -> TriageSignal:
    appliance, metric = name
    what = f"{metric} rate" if is_counter(metric) else metric
    verb = "rose" if shift > 0 else "fell"
    when = (
        f"{lead:.0f} s before" if lead > 0.5
        else f"{-lead:.0f} s after" if lead < -0.5
        else "together with"
    )  # fmt: skip
    text = f"{what} {verb} {when} {job.trigger_metric} ({shift:+.1f} sigma, r={pearson:+.2f})"
    if len(job.window.appliances) > 1:
        text = f"{appliance}: {text}"
    return TriageSignal(appliance, metric, change_ts, lead, shift, pearson, spearman, score, text)


class Triage:
    """The triage pool. `submit` never blocks; `close` drops queued jobs."""

    def __init__(self, config: TriageConfig) -> None:
        self.config = config
        self._pool = ThreadPoolExecutor(config.workers, thread_name_prefix="cdnops.triage")

    def submit(self, job: TriageJob) -> Future[list[TriageSignal]]:
        """Queue a job; the future holds its ranked signals."""
        return self._pool.submit(run_triage, job)

    async def triage(self, incident: Incident, history: HistoryWindow) -> list[TriageSignal]:
        """Triage one incident over `history` without blocking the event loop."""
        return await asyncio.wrap_future(self.submit(job_for(incident, history, self.config)))

    def close(self) -> None:
        """Stop the pool; queued jobs are cancelled, a running one finishes in its thread."""
        self._pool.shutdown(wait=False, cancel_futures=True)

    def __enter__(self) -> Triage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
