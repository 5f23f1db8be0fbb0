"""The temporal detector: each series against its own past, through the engine."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import numpy as np
import pytest
from detect_frames import FrameMaker, inventory, normal_values

from cdnops.config.detect import DetectConfig, PeersConfig, TemporalConfig
from cdnops.detect.engine import DetectionEngine
from cdnops.detect.windows import TemporalParams, TemporalState
from cdnops.model import CONTRACT_METRICS, Anomaly, DetectionResult, Detector

COL = {name: j for j, name in enumerate(CONTRACT_METRICS)}
NO_PEERS = DetectConfig(peers=PeersConfig(enabled=False))
HISTORY = 150  # ticks of normal data before anything is injected
DETECT_WITHIN = 5  # ticks after the injection by which the anomaly must have entered


def run(
    change: Callable[[int, np.ndarray], None], ticks: int, cfg: DetectConfig = NO_PEERS, n: int = 3
) -> list[DetectionResult]:
    """Feed `ticks` ticks of noisy normal values to an engine; `change(t, values)` edits them."""
    maker = FrameMaker(inventory([("sea01", n)]))
    engine = DetectionEngine(cfg, maker.metrics)
    rng = np.random.default_rng(7)
    out = []
    for t in range(ticks):
        values = normal_values(n, rng)
        change(t, values)
        out.append(engine.update(maker.frame(values)))
    return out


def first_entered(results: list[DetectionResult], metric: str) -> tuple[int, Anomaly] | None:
    for t, r in enumerate(results):
        for a in r.entered:
            if a.metric == metric and a.appliance == "sea01-oca-000":
                return t, a
    return None


def entered_count(results: list[DetectionResult]) -> int:
    return sum(len(r.entered) for r in results)


def test_quiet_fleet_raises_nothing() -> None:
    results = run(lambda t, v: None, HISTORY + 200)
    assert entered_count(results) == 0


@pytest.mark.parametrize(
    ("metric", "delta"),
    [
        ("origin_latency_p99_ms", +60.0),  # step up: 15 sigma
        ("egress_gbps", -12.0),  # drop of traffic
        ("cpu_util", +0.3),  # step up
    ],
)
def test_step_is_detected_within_a_few_ticks(metric: str, delta: float) -> None:
    def step(t: int, v: np.ndarray) -> None:
        if t >= HISTORY:
            v[0, COL[metric]] += delta

    hit = first_entered(run(step, HISTORY + 20), metric)
    assert hit is not None
    t, anomaly = hit
    assert HISTORY <= t < HISTORY + DETECT_WITHIN
    assert anomaly.detector is Detector.TEMPORAL


def test_single_spike_is_detected() -> None:
    def spike(t: int, v: np.ndarray) -> None:
        if HISTORY <= t < HISTORY + 2:  # hysteresis needs 2 of 3 ticks
            v[0, COL["origin_latency_p99_ms"]] = 400.0

    hit = first_entered(run(spike, HISTORY + 20), "origin_latency_p99_ms")
    assert hit is not None
    assert HISTORY <= hit[0] < HISTORY + DETECT_WITHIN


def test_ramp_is_detected_before_it_gets_large() -> None:
    def ramp(t: int, v: np.ndarray) -> None:
        if t >= HISTORY:
            v[0, COL["origin_latency_p99_ms"]] += 2.0 * (t - HISTORY)  # +0.5 sigma per tick

    hit = first_entered(run(ramp, HISTORY + 60), "origin_latency_p99_ms")
    assert hit is not None
    assert hit[0] < HISTORY + 30  # before the ramp reaches +60 ms


def test_direction_cache_hit_drop_flags_rise_does_not() -> None:
    def drop(t: int, v: np.ndarray) -> None:
        if t >= HISTORY:
            v[0, COL["cache_hit_ratio"]] -= 0.08

    def rise(t: int, v: np.ndarray) -> None:
        if t >= HISTORY:
            v[0, COL["cache_hit_ratio"]] = 0.999

    hit = first_entered(run(drop, HISTORY + 20), "cache_hit_ratio")
    assert hit is not None
    assert hit[1].detector is Detector.TEMPORAL
    assert first_entered(run(rise, HISTORY + 20), "cache_hit_ratio") is None


def test_warmup_suppresses_verdicts() -> None:
    cfg = DetectConfig(peers=PeersConfig(enabled=False), warmup_ticks=50)

    def early(t: int, v: np.ndarray) -> None:
        if 10 <= t < 20:
            v[0, COL["origin_latency_p99_ms"]] = 900.0

    results = run(early, 40, cfg)
    assert first_entered(results, "origin_latency_p99_ms") is None
    assert np.isnan(results[15].scores[0, COL["origin_latency_p99_ms"]])


def test_missing_values_do_not_poison_state() -> None:
    def gaps(t: int, v: np.ndarray) -> None:
        if t % 7 == 0 or 80 <= t < 110:
            v[0, :] = np.nan  # a failed or partial poll
        if t >= HISTORY:
            v[0, COL["origin_latency_p99_ms"]] += 60.0

    results = run(gaps, HISTORY + 20)
    after_gap = results[HISTORY - 1].scores
    valid_cols = [COL[m] for m in CONTRACT_METRICS if m != "disk_errors_total"]
    assert not np.isnan(after_gap[0, valid_cols]).any()
    hit = first_entered(results, "origin_latency_p99_ms")
    assert hit is not None
    assert hit[0] < HISTORY + DETECT_WITHIN


def test_scores_are_within_unit_interval() -> None:
    def wild(t: int, v: np.ndarray) -> None:
        if t > 50 and t % 13 == 0:
            v[0, :] *= 50.0

    for r in run(wild, 200):
        s = r.scores[~np.isnan(r.scores)]
        assert s.size
        assert ((s >= 0.0) & (s <= 1.0)).all()


def test_diurnal_cycle_raises_nothing() -> None:
    day = 288  # ticks per cycle, fast compared with the slow baseline

    def diurnal(t: int, v: np.ndarray) -> None:
        f = 1.0 + 0.5 * np.sin(2 * np.pi * t / day)
        for m in ("egress_gbps", "active_connections", "requests_total", "cpu_util"):
            v[:, COL[m]] *= f

    results = run(diurnal, 3 * day, DetectConfig(), n=8)
    assert entered_count(results) == 0


def test_warm_up_scores_do_not_damp_the_first_real_alarm() -> None:
    # the first ticks' likelihood is often high (nothing is known about the surprise yet);
    # those scores are never reported, so they must not halve the first alarm after them
    lat = COL["origin_latency_p99_ms"]
    spike_at = 60

    def change(t: int, values: np.ndarray) -> None:
        if t in (2, 3):
            values[0, lat] *= 3.0  # an early jump while the series is young
        if t == spike_at:
            values[0, lat] = 900.0

    results = run(change, spike_at + 1)
    assert np.isnan(results[3].scores[0, lat])  # not reported during the warm-up
    assert results[spike_at].scores[0, lat] >= 0.5  # the first alarm at full score


def _state_run(
    cfg: TemporalConfig, spikes: dict[int, float], ticks: int, seed: int = 3
) -> tuple[TemporalState, list[tuple[np.ndarray, np.ndarray]]]:
    """Noisy values (sigma 1 around 100) on a (2, 3) block, some missing; `spikes` adds a
    jump to cell (0, 0) at the given ticks. Returns the state and each tick's
    (likelihood, valid)."""
    state, run = _scores_run(cfg, spikes, ticks, seed=seed)
    return state, [(likelihood, valid) for likelihood, _, valid in run]


def test_a_record_surprise_scores_as_an_anomaly_where_its_average_does_not() -> None:
    # one spike of 8 sigma in a quiet series: its 4-tick average is not improbable enough
    # for the likelihood, but it is more than twice the largest surprise of the recent ticks
    spike_at = 1200
    off = TemporalConfig(record_ratio=0.0)
    _, plain = _state_run(off, {spike_at: 8.0}, spike_at + 1)
    state, scored = _state_run(TemporalConfig(), {spike_at: 8.0}, spike_at + 1)
    assert plain[spike_at][0][0, 0] < 0.5
    assert scored[spike_at][0][0, 0] >= 0.5
    # the spike is now the largest recent surprise: the same spike again is no record
    assert state.arrays["peak"][0, 0] > 5.0
    _, again = _state_run(TemporalConfig(), {spike_at - 50: 8.0, spike_at: 8.0}, spike_at + 1)
    assert again[spike_at][0][0, 0] < 0.5


def test_record_score_is_the_same_in_the_kernel_and_the_general_update() -> None:
    # refractory_ticks 0 keeps every tick on the general (young) update; otherwise the
    # kernel takes over after 8 ticks; both must give the same likelihood and peaks
    spikes = {t: 3.0 + t % 11 for t in range(40, 1500, 97)}
    general, a = _state_run(TemporalConfig(refractory_ticks=0), spikes, 1500)
    kernel, b = _state_run(TemporalConfig(), spikes, 1500)
    assert kernel._kernel is not None
    assert general._kernel is None
    fired = 0
    for (lik_a, valid), (lik_b, _) in zip(a, b, strict=True):
        np.testing.assert_allclose(lik_a[valid], lik_b[valid], atol=1e-4)
        fired += int((lik_a[valid] >= 0.5).sum())
    assert fired > 0  # some spikes did score as anomalies
    np.testing.assert_allclose(general.arrays["peak"], kernel.arrays["peak"], rtol=1e-4)


def _scores_run(
    cfg: TemporalConfig,
    spikes: dict[int, float],
    ticks: int,
    general: bool = False,
    seed: int = 5,
) -> tuple[TemporalState, list[tuple[np.ndarray, np.ndarray, np.ndarray]]]:
    """The run of `_state_run` with each tick's (likelihood, score, valid); `general` runs
    every tick through the general update instead of the kernel."""
    state = TemporalState((2, 3), TemporalParams.from_config(cfg, warmup=30))
    rng = np.random.default_rng(seed)
    ones, floor = np.ones(3, np.float32), np.full(3, 1e-6, np.float32)
    out = []
    for t in range(ticks):
        x = (100.0 + rng.standard_normal((2, 3))).astype(np.float32)
        x[0, 0] += np.float32(spikes.get(t, 0.0))
        valid = rng.random((2, 3)) > 0.05
        valid[0, 0] |= t in spikes
        step = state._update_young if general else state.update
        likelihood, score, _ = step(x, valid, ones, ones, floor, None)
        out.append((likelihood.copy(), score.copy(), valid))
    return state, out


def test_a_series_that_fires_often_ranks_its_firings_lower() -> None:
    # the same 40-sigma spike every 300 ticks (past the damping): each one fires, but the
    # more firings the series had before, the lower the score it reports
    spikes = {t: 40.0 for t in range(600, 3000, 300)}
    _, plain = _scores_run(TemporalConfig(rate_weight=0.0), spikes, 3000)
    state, ranked = _scores_run(TemporalConfig(), spikes, 3000)
    firsts = [ranked[t][1][0, 0] for t in sorted(spikes)]
    for t in spikes:
        lik, score = plain[t][0][0, 0], plain[t][1][0, 0]
        assert lik >= 0.5
        assert score == lik
        assert ranked[t][0][0, 0] == lik  # the likelihood and the verdict do not change
    assert all(s >= 0.5 for s in firsts)  # still a firing
    assert all(b < a for a, b in itertools.pairwise(firsts))
    assert firsts[-1] < 0.7 < 0.99 < firsts[0]
    assert state.arrays["fires"][0, 0] > 5.0
    # ticks that are no firing keep the damped likelihood, below every firing
    for (_, a, valid), (_, b, _) in zip(plain, ranked, strict=True):
        quiet = valid & (a < 0.5)
        np.testing.assert_array_equal(a[quiet], b[quiet])


def test_a_firings_count_fades() -> None:
    # two firings long apart: the second ranks as (nearly) a first one
    near, far = {600: 40.0, 900: 40.0}, {600: 40.0, 600 + 60_000: 40.0}
    _, a = _scores_run(TemporalConfig(rate_ticks=1000), near, 901)
    _, b = _scores_run(TemporalConfig(rate_ticks=1000), far, 60_601)
    first = a[600][1][0, 0]
    assert a[900][1][0, 0] < first - 0.05
    assert b[60_600][1][0, 0] == pytest.approx(0.5 + 0.5 * b[60_600][0][0, 0], abs=1e-4)


def test_firing_rank_is_the_same_in_the_kernel_and_the_general_update() -> None:
    spikes = {t: 6.0 + t % 7 for t in range(100, 4000, 271)}
    kernel, a = _scores_run(TemporalConfig(), spikes, 4000)
    general, b = _scores_run(TemporalConfig(), spikes, 4000, general=True)
    assert kernel._kernel is not None
    assert general._kernel is None
    ranked = 0
    for (_, sa, valid), (_, sb, _) in zip(a, b, strict=True):
        np.testing.assert_allclose(sa[valid], sb[valid], atol=1e-4)
        ranked += int(((sa[valid] >= 0.5) & (sa[valid] < 0.75)).sum())
    assert ranked > 0  # some firings were ranked down
    for k in ("fires", "fired_at"):
        np.testing.assert_allclose(general.arrays[k], kernel.arrays[k], rtol=1e-4)
