"""Detection settings (the `detect:` section of the config)."""

from __future__ import annotations

import enum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

PositiveTicks = Annotated[int, Field(ge=1, le=100_000)]


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Direction(enum.StrEnum):
    """Which departures from the baseline are bad: a rise, a drop, or both."""

    UP = "up"
    DOWN = "down"
    BOTH = "both"


class MetricRule(_Frozen):
    """How one metric is judged by the baseline detectors."""

    direction: Direction = Direction.BOTH
    temporal: bool = True  # the value against its own past
    peers: bool = True  # the value against its site's other appliances
    traffic: bool = False  # expected to move when an appliance is drained or in maintenance
    min_sigma: float = Field(default=0.0, ge=0)  # smallest spread that matters, in its units


class Bound(_Frozen):
    """Static limits; a value strictly above `above` or strictly below `below` is anomalous."""

    above: float | None = None
    below: float | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Bound:
        if self.above is not None and self.below is not None and self.below >= self.above:
            raise ValueError("below must be smaller than above")
        return self


class Ceiling(_Frozen):
    """A ramp towards `ceiling` is anomalous when projected to reach it within `horizon_s`."""

    ceiling: float
    horizon_s: float = Field(default=3600.0, gt=0)


class Hysteresis(_Frozen):
    """Enter after `enter_ticks` firing ticks among the last `window_ticks`; leave after
    `clear_ticks` clean ticks in a row."""

    enter_ticks: int = Field(default=2, ge=1, le=16)
    window_ticks: int = Field(default=3, ge=1, le=16)
    clear_ticks: int = Field(default=5, ge=1, le=10_000)

    @model_validator(mode="after")
    def _enter_fits_window(self) -> Hysteresis:
        if self.enter_ticks > self.window_ticks:
            raise ValueError("enter_ticks must not exceed window_ticks")
        return self


class TemporalConfig(_Frozen):
    """Each series against its own past: robust EWMA at two time scales and a likelihood."""

    enabled: bool = True
    fast_ticks: PositiveTicks = 30  # short baseline: catches spikes against the recent level
    slow_ticks: PositiveTicks = 1000  # long baseline: catches shifts and slow departures
    clip_sigma: float = Field(default=3.0, gt=0)  # updates are clipped to this many sigmas
    rel_floor: float = Field(default=0.01, ge=0)  # sigma never below this fraction of the mean
    abs_floor: float = Field(default=1e-9, ge=0)  # nor below this absolute value
    short_ticks: PositiveTicks = 4  # averaging of the raw score before the likelihood
    long_ticks: PositiveTicks = 2000  # long-run distribution of the raw score
    threshold: float = Field(default=0.5, gt=0, le=1)  # score at which the detector fires
    min_z: float = Field(default=4.0, ge=0)  # and only if the value is this many sigmas off
    refractory_ticks: int = Field(default=250, ge=0, le=100_000)  # damp re-alarms after a firing
    # a surprise this many times the largest recent one scores 0.5 whatever its likelihood
    # (a single spike is diluted in the likelihood's short average); 0 turns this off
    record_ratio: float = Field(default=2.0, ge=0)
    record_ticks: PositiveTicks = 2000  # the largest recent surprise fades over this many ticks
    # the score of a firing is threshold + (1 - threshold) x likelihood / (1 + weight x n),
    # n the series' earlier firings (each fading over rate_ticks): a series that fires often
    # ranks its alarms lower; the verdict is not affected; 0 turns this off
    rate_weight: float = Field(default=0.3, ge=0)
    rate_ticks: PositiveTicks = 20000


class SeasonalConfig(_Frozen):
    """Time-of-week and time-of-day baselines: `buckets` buckets of `bucket_s` seconds (168 x
    1 h is one week) and `day_buckets` of the same length (24 x 1 h is one day), each the
    mean of its past visits; the temporal detector then judges the value less its usual
    departure at this time, where one of the two patterns explains the series."""

    enabled: bool = True
    bucket_s: float = Field(default=3600.0, ge=1.0, le=86_400.0)
    buckets: int = Field(default=168, ge=2, le=1008)
    rate: float = Field(default=0.2, gt=0, le=1)  # weight of a new visit in its bucket's mean
    min_visits: int = Field(default=2, ge=1, le=255)  # visits before a bucket is trusted
    day_buckets: int = Field(default=24, ge=0, le=1008)  # 0 turns the time-of-day baseline off
    day_min_visits: int = Field(default=2, ge=1, le=255)  # days before a day bucket is trusted
    # buckets must explain the series: their error below this fraction of the plain level's
    strength: float = Field(default=0.5, gt=0, le=1)
    error_rate: float = Field(default=0.002, gt=0, le=1)  # per visit, for both errors
    level_rate: float = Field(default=0.002, gt=0, le=1)  # per visit, the series' level
    # where this time of the day usually brings a largest surprise over this many times the
    # series' usual one, the surprise is judged smaller by the excess (0 turns it off)
    peak_ratio: float = Field(default=3.0, ge=0)

    @model_validator(mode="after")
    def _fits_state(self) -> SeasonalConfig:
        # per series, 5 bytes per bucket of the week and 7 per bucket of the day (its usual
        # peak too): keeps a series' whole state under 4 KiB
        if 5 * self.buckets + 7 * self.day_buckets > 3500:
            raise ValueError(
                "5 x buckets + 7 x day_buckets must not exceed 3500 (bytes of state per series)"
            )
        return self


class PeersConfig(_Frozen):
    """Each appliance against its site's serving appliances at the same tick."""

    enabled: bool = True
    z: float = Field(default=6.0, gt=0)  # robust z-score (site median and MAD) that fires
    # a temporal anomaly on a traffic metric also needs this peers z-score: demand moves a
    # whole site (diurnal cycle, surge), which is no appliance's anomaly
    confirm_z: float = Field(default=3.0, ge=0)
    min_peers: int = Field(default=4, ge=2)  # fewer valid serving peers: no verdict
    rel_floor: float = Field(default=0.02, ge=0)  # MAD never below this fraction of the median
    abs_floor: float = Field(default=1e-6, ge=0)


class ReachabilityConfig(_Frozen):
    """Consecutive failed polls before an appliance is reported unreachable."""

    enabled: bool = True
    failures: int = Field(default=3, ge=1)
    by_reason: dict[str, int] = Field(default_factory=lambda: {"not_polled": 6})

    @model_validator(mode="after")
    def _known_reasons(self) -> ReachabilityConfig:
        known = {"timeout", "refused", "connection", "http_status", "bad_body", "too_large"}
        unknown = set(self.by_reason) - known - {"not_polled"}
        if unknown:
            raise ValueError(f"unknown failure reasons: {', '.join(sorted(unknown))}")
        if any(v < 1 for v in self.by_reason.values()):
            raise ValueError("failure counts must be >= 1")
        return self


class ServicesConfig(_Frozen):
    """A service reported `failed` for `failed_ticks` ticks in a row is an anomaly."""

    enabled: bool = True
    failed_ticks: int = Field(default=1, ge=1, le=16)
    clear_ticks: int = Field(default=2, ge=1, le=10_000)


def _default_rules() -> dict[str, MetricRule]:
    up, down = Direction.UP, Direction.DOWN
    return {
        "cpu_util": MetricRule(direction=up, traffic=True, min_sigma=0.02),
        "mem_util": MetricRule(direction=up, min_sigma=0.01),
        "egress_gbps": MetricRule(traffic=True),
        "active_connections": MetricRule(traffic=True),
        "cache_hit_ratio": MetricRule(direction=down, traffic=True, min_sigma=0.01),
        "http_5xx_ratio": MetricRule(direction=up, min_sigma=0.002),
        "origin_latency_p99_ms": MetricRule(direction=up, min_sigma=5.0),
        "tcp_retransmit_ratio": MetricRule(direction=up, min_sigma=0.002),
        "temperature_c": MetricRule(direction=up, min_sigma=1.0),
        "requests_total": MetricRule(traffic=True),
        "disk_errors_total": MetricRule(direction=up, temporal=False, peers=False),
        "nic_errors_total": MetricRule(direction=up, min_sigma=0.1),
    }


def _default_bounds() -> dict[str, Bound]:
    return {
        "temperature_c": Bound(above=85.0),
        "http_5xx_ratio": Bound(above=0.05),
        "mem_util": Bound(above=0.97),
        "cache_hit_ratio": Bound(below=0.5),
        "tcp_retransmit_ratio": Bound(above=0.05),
    }


class DetectConfig(_Frozen):
    """Detector parameters; every field has a default that suits the contract's metrics."""

    warmup_ticks: int = Field(default=30, ge=1, le=100_000)  # no baseline verdict before this
    metrics: dict[str, MetricRule] = Field(default_factory=_default_rules)
    default_rule: MetricRule = MetricRule()  # for metrics not listed in `metrics`
    hysteresis: Hysteresis = Hysteresis()
    temporal: TemporalConfig = TemporalConfig()
    seasonal: SeasonalConfig = SeasonalConfig()
    peers: PeersConfig = PeersConfig()
    bounds: dict[str, Bound] = Field(default_factory=_default_bounds)
    counters: dict[str, float] = Field(
        default_factory=lambda: {"disk_errors_total": 0.0}
    )  # counter -> rate per second above which it is an anomaly
    # a counter's verdict holds this many ticks after each rise, so one that steps less
    # than once per poll (a disk error every few polls) stays an anomaly between its steps
    counter_hold_ticks: PositiveTicks = 30
    trend: dict[str, Ceiling] = Field(
        default_factory=lambda: {
            "mem_util": Ceiling(ceiling=0.97, horizon_s=3600.0),
            "temperature_c": Ceiling(ceiling=85.0, horizon_s=1800.0),
        }
    )
    trend_ticks: PositiveTicks = 60  # smoothing of level and slope for the trend detector
    reachability: ReachabilityConfig = ReachabilityConfig()
    services: ServicesConfig = ServicesConfig()

    def rule(self, metric: str) -> MetricRule:
        """The rule of a metric, or the default rule for a metric not listed."""
        return self.metrics.get(metric, self.default_rule)
