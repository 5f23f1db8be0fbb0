"""The daemon's own Prometheus metrics (`/metrics`), labelled by site, result, state, detector.

Every metric is documented in `docs/metrics.md`. No metric here carries an appliance label:
per-appliance series live on the opt-in `/metrics/appliances` route (`cdnops.api.appliances`).
"""

from __future__ import annotations

import collections
import time
from collections.abc import Iterable, Iterator

import numpy as np
import numpy.typing as npt
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
from prometheus_client.metrics_core import GaugeMetricFamily, Metric

from cdnops.model import ApplianceState, DetectionResult, Detector, FleetFrame, PollFailure

# Poll round trips on loopback take about a millisecond; the poll timeout caps them near 2 s.
POLL_DURATION_BUCKETS_S: tuple[float, ...] = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.0,
)
# A tick should finish within milliseconds of its boundary; seconds of lag mean an overload.
TICK_LAG_BUCKETS_S: tuple[float, ...] = (
    0.001,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)

UNREACHABLE = "unreachable"
STATE_LABELS: tuple[str, ...] = (
    *(s.name.lower() for s in ApplianceState if s != ApplianceState.UNKNOWN),
    UNREACHABLE,
)
# ApplianceState code -> index in STATE_LABELS; UNKNOWN (no state reported) is unreachable.
_LABEL_OF_CODE = np.array(
    [
        STATE_LABELS.index(UNREACHABLE if s == ApplianceState.UNKNOWN else s.name.lower())
        for s in ApplianceState
    ],
    dtype=np.int64,
)
DETECTOR_LABELS: tuple[str, ...] = tuple(d.value for d in Detector)
RELOAD_RESULTS: tuple[str, ...] = ("ok", "failed")


def count_states(frame: FleetFrame) -> npt.NDArray[np.int64]:
    """Appliances per (site, state label): an int array of shape (sites, len(STATE_LABELS)).

    An appliance whose last poll failed, or whose state is unknown, counts as unreachable;
    so does a state code outside ApplianceState (a corrupt frame is counted, not fatal).
    Rows whose site index is out of range are left out.
    """
    n_sites, n_labels = len(frame.sites), len(STATE_LABELS)
    codes = frame.state.astype(np.int64)
    known = (codes >= 0) & (codes < len(_LABEL_OF_CODE)) & (frame.failure == PollFailure.OK)
    labels = np.full(codes.shape, n_labels - 1, dtype=np.int64)
    labels[known] = _LABEL_OF_CODE[codes[known]]
    sites = frame.site_index.astype(np.int64)
    in_range = (sites >= 0) & (sites < n_sites)
    flat = sites[in_range] * n_labels + labels[in_range]
    return np.bincount(flat, minlength=n_sites * n_labels).reshape(n_sites, n_labels)


class _SnapshotCollector:
    """Gauges replaced wholesale per tick, so a site that left the inventory leaves no series."""

    def __init__(self) -> None:
        self.appliances: dict[tuple[str, str], int] = {}
        self.anomalies: dict[tuple[str, str], int] = {}

    def _families(self) -> tuple[GaugeMetricFamily, GaugeMetricFamily]:
        appliances = GaugeMetricFamily(
            "cdnops_appliances",
            "Appliances per site and state at the last tick; a failed poll counts as unreachable.",
            labels=("site", "state"),
        )
        anomalies = GaugeMetricFamily(
            "cdnops_anomalies",
            "Anomalies active after the last detection pass, per site and detector.",
            labels=("site", "detector"),
        )
        return appliances, anomalies

    def describe(self) -> Iterable[Metric]:
        return self._families()

    def collect(self) -> Iterator[Metric]:
        appliances, anomalies = self._families()
        for (site, state), count in self.appliances.items():
            appliances.add_metric((site, state), count)
        for (site, detector), count in self.anomalies.items():
            anomalies.add_metric((site, detector), count)
        yield appliances
        yield anomalies


class DaemonMetrics:
    """The daemon's metrics on an injected registry; implements the poller's PollObserver.

    All methods are called on the event loop and are cheap: `poll_done` runs once per poll,
    so its labelled children are cached per (site, failure).
    """

    def __init__(self, registry: CollectorRegistry, *, instance: str, version: str) -> None:
        """Create and register every metric.

        Args:
            registry: where the metrics are registered (never the global registry).
            instance: a name for this daemon, exported as `instance_name` on the build info.
            version: the cdnops version, exported on the build info.
        """
        # `instance` would clash with the label Prometheus attaches to every scraped target.
        build = Info("cdnops_build", "cdnops version and daemon name.", registry=registry)
        build.info({"version": version, "instance_name": instance})
        self._register_poll_metrics(registry)
        self._register_tick_metrics(registry)
        self._register_event_metrics(registry)
        self._snapshot = _SnapshotCollector()
        registry.register(self._snapshot)
        for result in RELOAD_RESULTS:
            self._reloads.labels(result)  # export zeros so rate() works from the first reload
        self._last_reload.set(time.time())
        self._poll_children: dict[tuple[str, int], tuple[Counter, Counter | None]] = {}
        self._entered_children: dict[tuple[str, str], Counter] = {}
        self._sites: tuple[str, ...] = ()

    def _register_poll_metrics(self, registry: CollectorRegistry) -> None:
        self._polls = Counter(
            "cdnops_polls",
            "Appliance polls by site and result (ok or the failure reason).",
            ("site", "result"),
            registry=registry,
        )
        self._failures = Counter(
            "cdnops_poll_failures",
            "Failed appliance polls by site and reason.",
            ("site", "reason"),
            registry=registry,
        )
        self._poll_duration = Histogram(
            "cdnops_poll_duration_seconds",
            "Duration of one appliance poll, successful or not.",
            buckets=POLL_DURATION_BUCKETS_S,
            registry=registry,
        )

    def _register_tick_metrics(self, registry: CollectorRegistry) -> None:
        self._ticks = Counter("cdnops_ticks", "Poll ticks completed.", registry=registry)
        self._tick_lag = Histogram(
            "cdnops_tick_lag_seconds",
            "How late a tick's frame was produced after its scheduled boundary.",
            buckets=TICK_LAG_BUCKETS_S,
            registry=registry,
        )
        self._last_tick = Gauge(
            "cdnops_last_tick_timestamp_seconds",
            "Unix time at the end of the last completed tick.",
            registry=registry,
        )

    def _register_event_metrics(self, registry: CollectorRegistry) -> None:
        self._frames_dropped = Counter(
            "cdnops_frames_dropped",
            "Fleet frames dropped between polling and detection because detection lagged.",
            registry=registry,
        )
        self._entered = Counter(
            "cdnops_anomalies_entered",
            "Anomalies that became active, per site and detector.",
            ("site", "detector"),
            registry=registry,
        )
        self._reloads = Counter(
            "cdnops_config_reloads",
            "Configuration reloads by result (ok or failed).",
            ("result",),
            registry=registry,
        )
        self._last_reload = Gauge(
            "cdnops_config_last_reload_success_timestamp_seconds",
            "Unix time of the last successful configuration load (startup counts).",
            registry=registry,
        )

    def poll_done(self, site: str, failure: PollFailure, duration_s: float) -> None:
        """Count one poll of an appliance of `site` and observe its duration."""
        children = self._poll_children.get((site, failure))
        if children is None:
            children = self._poll_children_for(site, failure)
        polls, failures = children
        polls.inc()
        if failures is not None:
            failures.inc()
        self._poll_duration.observe(duration_s)

    def _poll_children_for(self, site: str, failure: PollFailure) -> tuple[Counter, Counter | None]:
        reason = PollFailure(failure).reason
        polls = self._polls.labels(site, reason)
        failures = None if failure == PollFailure.OK else self._failures.labels(site, reason)
        self._poll_children[(site, failure)] = (polls, failures)
        return polls, failures

    def tick_done(self, frame: FleetFrame, lag_s: float) -> None:
        """Record a completed tick: its lag, its time and the appliances per site and state."""
        self._ticks.inc()
        self._tick_lag.observe(lag_s)
        self._last_tick.set(frame.ts)
        counts = count_states(frame).tolist()
        self._snapshot.appliances = {
            (site, state): row[j]
            for site, row in zip(frame.sites, counts, strict=True)
            for j, state in enumerate(STATE_LABELS)
        }
        if frame.sites != self._sites:
            self._sites = frame.sites
            self._snapshot.anomalies = self._zero_anomalies() | {
                k: v for k, v in self._snapshot.anomalies.items() if k[0] in frame.sites
            }

    def _zero_anomalies(self) -> dict[tuple[str, str], int]:
        return {(site, d): 0 for site in self._sites for d in DETECTOR_LABELS}

    def detection_done(self, result: DetectionResult) -> None:
        """Publish the active anomalies per site and detector; count those that entered."""
        active = collections.Counter((a.site, a.detector.value) for a in result.active)
        self._snapshot.anomalies = self._zero_anomalies() | dict(active)
        for anomaly in result.entered:
            key = (anomaly.site, anomaly.detector.value)
            child = self._entered_children.get(key)
            if child is None:
                child = self._entered_children[key] = self._entered.labels(*key)
            child.inc()

    def config_reloaded(self, ok: bool) -> None:
        """Count a configuration reload; a successful one also stamps the success time."""
        self._reloads.labels("ok" if ok else "failed").inc()
        if ok:
            self._last_reload.set(time.time())

    def frames_dropped(self, n: int) -> None:
        """Count `n` frames dropped between polling and detection."""
        if n < 0:
            raise ValueError(f"frames_dropped: n must be >= 0, got {n}")
        self._frames_dropped.inc(n)
