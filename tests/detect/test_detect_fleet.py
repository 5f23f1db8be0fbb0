"""Peers, bounds, counter, trend, reachability, services and hysteresis on synthetic fleets."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from detect_frames import FrameMaker, inventory, normal_values

from cdnops.config.detect import DetectConfig, PeersConfig, TemporalConfig
from cdnops.detect.detectors import SiteGroups
from cdnops.detect.engine import DetectionEngine
from cdnops.detect.hysteresis import Hysteresis
from cdnops.model import (
    CONTRACT_METRICS,
    ApplianceState,
    DetectionResult,
    Detector,
    PollFailure,
    ServiceStatus,
)

COL = {name: j for j, name in enumerate(CONTRACT_METRICS)}
NO_TEMPORAL = DetectConfig(temporal=TemporalConfig(enabled=False))
SITES = [("sea01", 8), ("fra02", 6)]


def run(
    change: Callable[[int, np.ndarray], None],
    ticks: int,
    cfg: DetectConfig = NO_TEMPORAL,
    **frame_kw: Callable[[int], np.ndarray | None],
) -> list[DetectionResult]:
    """Feed `ticks` ticks to an engine; `change` edits values, `frame_kw` give other arrays."""
    maker = FrameMaker(inventory(SITES))
    engine = DetectionEngine(cfg, maker.metrics)
    rng = np.random.default_rng(3)
    out = []
    for t in range(ticks):
        values = normal_values(14, rng)
        change(t, values)
        extra = {k: f(t) for k, f in frame_kw.items()}
        out.append(engine.update(maker.frame(values, **extra)))
    return out


def entered(results: list[DetectionResult]) -> list[tuple[int, str, str, Detector]]:
    return [
        (t, a.appliance, a.metric, a.detector) for t, r in enumerate(results) for a in r.entered
    ]


def test_one_appliance_leaving_its_peers_is_flagged() -> None:
    def depart(t: int, v: np.ndarray) -> None:
        if t >= 40:
            v[2, COL["cache_hit_ratio"]] = 0.80  # its siblings stay at 0.97

    got = entered(run(depart, 50))
    assert got[0][1:] == ("sea01-oca-002", "cache_hit_ratio", Detector.PEERS)
    assert 40 <= got[0][0] <= 41
    assert len(got) == 1


def test_site_wide_surge_flags_no_appliance() -> None:
    def surge(t: int, v: np.ndarray) -> None:
        if t >= 40:
            v[:8, COL["egress_gbps"]] *= 2.5  # the whole sea01 site
            v[:8, COL["origin_latency_p99_ms"]] += 200.0

    assert entered(run(surge, 60)) == []


def test_site_wide_surge_with_temporal_on_flags_no_peers_anomaly() -> None:
    def surge(t: int, v: np.ndarray) -> None:
        if t >= 40:
            v[:8, COL["egress_gbps"]] *= 1.5

    got = entered(run(surge, 60, DetectConfig()))
    assert all(d is not Detector.PEERS for *_, d in got)


def test_bounds_fire_and_hysteresis_stops_a_storm() -> None:
    def flap(t: int, v: np.ndarray) -> None:
        v[:, COL["temperature_c"]] += 31.0  # a hot room: every appliance near 82
        v[0, COL["temperature_c"]] = 86.0 if t % 2 == 0 else 84.0  # flapping around 85

    results = run(flap, 100)
    temps = [e for e in entered(results) if e[2] == "temperature_c"]
    assert [e[1:] for e in temps] == [("sea01-oca-000", "temperature_c", Detector.BOUNDS)]
    assert temps[0][0] == 2  # enter after 2 of the last 3 ticks
    assert sum(len(r.cleared) for r in results) == 0
    assert len(results[-1].active) == 1


def test_anomaly_clears_after_clean_ticks() -> None:
    def burst(t: int, v: np.ndarray) -> None:
        if 10 <= t < 20:
            v[0, COL["temperature_c"]] = 95.0

    results = run(burst, 40)
    cleared_at = [t for t, r in enumerate(results) if r.cleared]
    assert cleared_at == [24]  # 5 clean ticks after the last hot one (t=19)
    assert results[24].cleared[0].metric == "temperature_c"


def test_disk_errors_rising_at_any_rate_is_a_counter_anomaly() -> None:
    def errors(t: int, v: np.ndarray) -> None:
        if t >= 20:
            v[5, COL["disk_errors_total"]] = 0.01  # errors per second

    got = entered(run(errors, 30))
    assert got[0][1:] == ("sea01-oca-005", "disk_errors_total", Detector.COUNTER)
    assert got[0][0] == 21


def test_a_counter_stepping_every_few_polls_stays_an_anomaly_between_steps() -> None:
    cfg = DetectConfig(temporal=TemporalConfig(enabled=False), counter_hold_ticks=10)

    def sparse(t: int, v: np.ndarray) -> None:
        if 20 <= t <= 50 and t % 4 == 0:  # one error every fourth poll, then none
            v[3, COL["disk_errors_total"]] = 0.1

    results = run(sparse, 75, cfg)
    got = entered(results)
    assert got == [(21, "sea01-oca-003", "disk_errors_total", Detector.COUNTER)]
    assert results[21].entered[0].explanation == (
        "disk_errors_total rose at 0.1/s 1 tick ago (limit 0/s)"
    )
    # held for 10 ticks after the last step (t=48: ticks 48-57), cleared on the 5th clean tick
    active = [t for t, r in enumerate(results) if r.active]
    assert active == list(range(21, 62))
    assert [t for t, r in enumerate(results) if r.cleared] == [62]


def test_slow_memory_leak_is_flagged_before_the_ceiling() -> None:
    leak_per_tick = 0.0005  # 0.6 -> 0.97 in 740 ticks (about 2 h at 10 s)

    def leak(t: int, v: np.ndarray) -> None:
        v[1, COL["mem_util"]] = 0.6 + leak_per_tick * t

    only_trend = DetectConfig(
        temporal=TemporalConfig(enabled=False), peers=PeersConfig(enabled=False)
    )
    results = run(leak, 740, only_trend)
    trend = [e for e in entered(results) if e[3] is Detector.TREND]
    assert trend
    t, appliance, metric, _ = trend[0]
    assert (appliance, metric) == ("sea01-oca-001", "mem_util")
    assert 0.6 + leak_per_tick * t < 0.90  # well before the 0.97 ceiling
    assert all(e[3] is not Detector.BOUNDS for e in entered(results))


def test_reachability_counts_consecutive_failures_by_reason() -> None:
    def failures(t: int) -> np.ndarray:
        f = np.zeros(14, np.int8)
        if t >= 10:
            f[0] = PollFailure.TIMEOUT  # default: 3 in a row
            f[1] = PollFailure.NOT_POLLED  # default for not_polled: 6 in a row
        if t % 2 == 0:
            f[2] = PollFailure.REFUSED  # never 3 in a row
        return f

    results = run(lambda t, v: None, 20, failure=failures)
    got = [(t, a.appliance, a.explanation) for t, r in enumerate(results) for a in r.entered]
    assert got == [
        (12, "sea01-oca-000", "3 consecutive failed polls (last: timeout)"),
        (15, "sea01-oca-001", "6 consecutive failed polls (last: not_polled)"),
    ]
    assert all(a.metric == "reachability" for a in results[-1].active)


def test_failed_service_is_an_anomaly() -> None:
    maker = FrameMaker(inventory(SITES))
    maker.services = ("nginx", "bgp")
    engine = DetectionEngine(NO_TEMPORAL, maker.metrics)
    status = np.full((14, 2), ServiceStatus.RUNNING, np.int8)
    rng = np.random.default_rng(1)
    engine.update(maker.frame(normal_values(14, rng), service_status=status))
    status[4, 1] = ServiceStatus.FAILED
    r = engine.update(maker.frame(normal_values(14, rng), service_status=status))
    assert [(a.appliance, a.metric, a.detector, a.explanation) for a in r.entered] == [
        ("sea01-oca-004", "service:bgp", Detector.SERVICE, "service bgp is failed (1 tick)")
    ]


def test_drained_appliance_raises_no_traffic_anomaly_but_still_reachability() -> None:
    def drain(t: int, v: np.ndarray) -> None:
        if t >= 40:
            v[3, COL["egress_gbps"]] = 0.0
            v[3, COL["active_connections"]] = 0.0
            v[3, COL["cache_hit_ratio"]] = 0.1

    def state(t: int) -> np.ndarray:
        s = np.full(14, ApplianceState.SERVING, np.int8)
        if t >= 40:
            s[3] = ApplianceState.DRAINED
        return s

    def failure(t: int) -> np.ndarray:
        f = np.zeros(14, np.int8)
        f[3] = PollFailure.TIMEOUT if t >= 60 else 0
        return f

    got = entered(run(drain, 70, DetectConfig(), state=state, failure=failure))
    assert got == [(62, "sea01-oca-003", "reachability", Detector.REACHABILITY)]


def test_hysteresis_does_not_reenter_from_old_firings() -> None:
    h = Hysteresis((1,), enter=2, window=8, clear=1)
    fire, calm = np.array([True]), np.array([False])
    assert h.update(fire)[0].tolist() == [False]
    assert h.update(fire)[0].tolist() == [True]
    assert h.update(calm)[1].tolist() == [True]  # cleared after 1 clean tick
    entered = [h.update(calm)[0][0] for _ in range(3)]
    assert entered == [False, False, False]


def test_site_medians_and_spreads_match_numpy_on_ragged_sites_with_left_out_cells() -> None:
    rng = np.random.default_rng(0)
    n, m, sites = 997, 5, 13
    site_index = rng.integers(0, sites, n).astype(np.intp)
    groups = SiteGroups(site_index, sites, m)
    x = rng.random((n, m)).astype(np.float32)
    ok = rng.random((n, m)) > 0.2
    ok[:, 3] = False  # a column nobody compares
    med, spread, count = groups.medians(x, np.flatnonzero(~ok))
    for s in range(sites):
        for j in range(m):
            v = x[(site_index == s) & ok[:, j], j]
            assert count[s, j] == len(v)
            if len(v):
                assert med[s, j] == pytest.approx(np.median(v), abs=1e-6)
                q1, q3 = np.quantile(v, [0.25, 0.75])
                assert spread[s, j] == pytest.approx(0.5 * (q3 - q1), abs=1e-5)
            else:
                assert np.isnan(med[s, j])
