"""Types passed between the stages (poll -> detect -> incidents -> remediate).

Every stage consumes and produces these; none imports a later stage. The per-tick
fleet data is a set of numpy arrays (appliance x metric) rather than per-appliance
objects, so that detection is vectorized over the whole fleet.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int32]
CodeArray = npt.NDArray[np.int8]

# The metrics of the appliance contract, in the column order used by default.
# The set is open: the config may track more (or fewer) names.
CONTRACT_METRICS: tuple[str, ...] = (
    "cpu_util",
    "mem_util",
    "egress_gbps",
    "active_connections",
    "cache_hit_ratio",
    "http_5xx_ratio",
    "origin_latency_p99_ms",
    "tcp_retransmit_ratio",
    "temperature_c",
    "requests_total",
    "disk_errors_total",
    "nic_errors_total",
)


def is_counter(metric: str) -> bool:
    """A `_total` metric is a monotonic counter; the poller turns it into a rate per second."""
    return metric.endswith("_total")


class HealthFormat(enum.StrEnum):
    """How an appliance is polled: the JSON health endpoint or the Prometheus text one."""

    JSON = "json"
    PROMETHEUS = "prometheus"


@dataclass(frozen=True, slots=True)
class Appliance:
    """One inventory entry (see the appliance contract)."""

    id: str
    site: str
    url: str
    labels: Mapping[str, str] = field(default_factory=dict)
    health_format: HealthFormat = HealthFormat.JSON


@dataclass(frozen=True, slots=True)
class Inventory:
    """The fleet, in a stable order: row i of every fleet array is `appliances[i]`."""

    appliances: tuple[Appliance, ...]

    @property
    def sites(self) -> tuple[str, ...]:
        """Distinct sites, sorted."""
        return tuple(sorted({a.site for a in self.appliances}))

    def index(self) -> dict[str, int]:
        """Appliance id to row."""
        return {a.id: i for i, a in enumerate(self.appliances)}


class PollFailure(enum.IntEnum):
    """Why a poll failed; 0 means it did not. Stored as int8 in fleet arrays."""

    OK = 0
    TIMEOUT = 1  # no complete answer within the per-request timeout
    REFUSED = 2  # connection refused (nothing listening)
    CONNECTION = 3  # other transport error: reset, DNS, unreachable
    HTTP_STATUS = 4  # an answer other than 200
    BAD_BODY = 5  # not the contract's JSON (invalid JSON, wrong types, NaN, missing keys)
    TOO_LARGE = 6  # body over the cap
    NOT_POLLED = 7  # no poll completed for this appliance during the tick

    @property
    def reason(self) -> str:
        """The label used in logs and metrics (`timeout`, `bad_body`, ...)."""
        return self.name.lower()


class ApplianceState(enum.IntEnum):
    """The contract's `state`, plus UNKNOWN when the last poll failed. Stored as int8."""

    UNKNOWN = 0
    SERVING = 1
    DRAINING = 2
    DRAINED = 3
    MAINTENANCE = 4


class ServiceStatus(enum.IntEnum):
    """The contract's service states (bgp's are folded in). Stored as int8; 0 = not reported."""

    ABSENT = 0
    RUNNING = 1  # also bgp `established`
    DEGRADED = 2  # also bgp `active` / `connect`
    FAILED = 3  # also bgp `idle`
    STOPPED = 4


@dataclass(frozen=True, slots=True)
class FleetFrame:
    """What the poller hands to detection once per tick: the whole fleet as arrays.

    Row i is `inventory.appliances[i]`; column j is `metrics[j]`. Counters (`_total`)
    hold a rate per second, computed from the last two good polls (NaN after a reset
    or on the first poll). `valid[i, j]` is False where the value is missing: failed
    poll, metric not reported, counter without a rate yet. Invalid cells hold NaN.
    """

    ts: float  # the daemon's wall clock at the end of the tick
    seq: int  # tick number since start
    inventory: Inventory
    site_index: IntArray  # (n,) index into `sites`
    sites: tuple[str, ...]
    metrics: tuple[str, ...]
    values: FloatArray  # (n, m)
    valid: BoolArray  # (n, m)
    failure: CodeArray  # (n,) PollFailure of the appliance's last poll in this tick
    state: CodeArray  # (n,) ApplianceState
    uptime_s: FloatArray  # (n,) NaN when unknown
    services: tuple[str, ...]  # service names seen so far, column order of `service_status`
    service_status: CodeArray  # (n, s) ServiceStatus
    # (n,) consecutive failed polls of each appliance up to this tick, 0 after a good one;
    # more than one per tick when the poller re-polls to confirm a failure. None (frames
    # built elsewhere, e.g. `cdnops detect`): detection counts failed ticks instead.
    fail_streak: IntArray | None = None

    @property
    def n(self) -> int:
        """Number of appliances."""
        return len(self.inventory.appliances)


class Detector(enum.StrEnum):
    """Which detector raised an anomaly."""

    BOUNDS = "bounds"
    TEMPORAL = "temporal"
    PEERS = "peers"
    COUNTER = "counter"
    TREND = "trend"
    REACHABILITY = "reachability"
    SERVICE = "service"


@dataclass(frozen=True, slots=True)
class Anomaly:
    """One active anomaly on one appliance x metric (or x service for SERVICE)."""

    appliance: str
    site: str
    metric: str  # the metric name; `reachability` or `service:<name>` for those detectors
    detector: Detector
    value: float
    baseline: float
    score: float  # in [0, 1]
    since_ts: float  # when it entered (after hysteresis)
    explanation: str  # one line an operator understands
    # When its evidence started, before the hysteresis confirmed it (the oldest firing
    # tick of the window it entered on; the first failed poll or `failed` answer of the
    # run). NaN: not known, take since_ts.
    onset_ts: float = float("nan")


@dataclass(frozen=True, slots=True)
class DetectionResult:
    """What detection hands to incidents once per tick."""

    ts: float
    seq: int
    scores: FloatArray  # (n, m) in [0, 1], NaN where there was nothing to score
    active: tuple[Anomaly, ...]  # every anomaly active after this tick
    entered: tuple[Anomaly, ...]  # anomalies that became active this tick
    cleared: tuple[Anomaly, ...]  # anomalies that stopped being active this tick
    # (n,) appliances with any verdict firing this tick, confirmed by hysteresis or not (a
    # failed poll, a failed service included): early evidence of what may be coming
    firing: BoolArray | None = None
