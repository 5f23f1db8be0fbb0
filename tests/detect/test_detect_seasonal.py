"""The time-of-week and time-of-day baselines: learned per bucket, used only where they
explain the series."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
from detect_frames import TICK_S, FrameMaker, inventory, normal_values

from cdnops.config.detect import DetectConfig, SeasonalConfig
from cdnops.detect.engine import DetectionEngine
from cdnops.detect.seasonal import SeasonalState
from cdnops.model import CONTRACT_METRICS, Detector

COL = {name: j for j, name in enumerate(CONTRACT_METRICS)}
LAT = COL["origin_latency_p99_ms"]
# a short "week" so the tests run in a fraction of a second: 12 buckets of 3 ticks (the
# time-of-day baseline off, so these tests see the weekly one alone)
SHORT_WEEK = SeasonalConfig(bucket_s=3 * TICK_S, buckets=12, day_buckets=0)
PERIOD = 3 * 12  # ticks
# a short "day" of the same 12 buckets inside a "week" seven times longer
SHORT_DAY = SeasonalConfig(bucket_s=3 * TICK_S, buckets=7 * 12, day_buckets=12)


def square(t: int) -> float:
    """High in the first half of each period, low in the second."""
    return 200.0 if (t % PERIOD) < PERIOD // 2 else 80.0


def feed(state: SeasonalState, values: list[float], t0: float = 0.0) -> list[float]:
    out = []
    for t, v in enumerate(values):
        x = np.full((1, 1), v, np.float32)
        out.append(float(state.adjust(x, np.ones((1, 1), np.bool_), t0 + t * TICK_S)[0, 0]))
    return out


def test_a_weekly_pattern_is_taken_out_once_known() -> None:
    rng = np.random.default_rng(1)
    state = SeasonalState((1, 1), SHORT_WEEK)
    values = [square(t) + rng.normal() for t in range(5 * PERIOD)]
    out = feed(state, values)
    # the first periods pass unchanged: no bucket has been seen in two weeks yet
    assert out[: 2 * PERIOD] == [np.float32(v) for v in values[: 2 * PERIOD]]
    # then both halves are judged around the series' level (140), not at 200 and 80
    late = np.array(out[4 * PERIOD :])
    assert np.abs(late - 140.0).max() < 8.0


def test_a_series_without_a_pattern_passes_unchanged() -> None:
    rng = np.random.default_rng(2)
    state = SeasonalState((1, 1), SHORT_WEEK)
    values = [50.0 + rng.normal() for _ in range(6 * PERIOD)]
    out = feed(state, values)
    assert out == [np.float32(v) for v in values]
    assert state.arrays["err_seasonal"][0, 0] > 0.5 * state.arrays["err_level"][0, 0]


def test_missing_values_are_not_summed_into_a_bucket() -> None:
    state = SeasonalState((1, 2), SHORT_WEEK)
    x = np.array([[10.0, np.nan]], np.float32)
    valid = np.array([[True, False]])
    for t in range(4):  # one whole bucket, then the first tick of the next
        state.adjust(x, valid, t * TICK_S)
    assert state.profile[0, 0, 0] == np.float32(10.0)
    assert np.isnan(state.profile[0, 0, 1])
    assert state.visits[0, 0, 1] == 0


def run_latency(
    cfg: DetectConfig, anomaly_at: int, ticks: int, kind: str = "time-of-week"
) -> list[tuple[int, str, str]]:
    """One appliance (no peers to compare with) whose latency follows `square` gets the
    high value in a low half-period at `anomaly_at`. Returns (tick, metric, detector) of
    the anomalies entered."""
    maker = FrameMaker(inventory([("sea01", 1)]))
    engine = DetectionEngine(cfg, maker.metrics)
    rng = np.random.default_rng(3)
    entered = []
    for t in range(ticks):
        v = normal_values(1, rng)
        v[:, LAT] = square(t) + rng.normal(size=1)
        if anomaly_at <= t < anomaly_at + 6:
            v[0, LAT] = 200.0 + rng.normal()
        r = engine.update(maker.frame(v))
        entered += [(t, a.metric, a.detector) for a in r.entered]
        for a in r.entered:
            if a.metric == "origin_latency_p99_ms" and cfg.seasonal.enabled:
                assert f"{kind} baseline" in a.explanation
    return entered


def test_a_value_normal_at_another_time_of_week_is_an_anomaly() -> None:
    cfg = DetectConfig(seasonal=SHORT_WEEK)
    at = 6 * PERIOD + 3 * PERIOD // 4  # the middle of a low half
    entered = run_latency(cfg, at, at + 6)
    lat = [(t, d) for t, m, d in entered if m == "origin_latency_p99_ms"]
    assert lat
    assert lat[0][0] - at <= 3
    assert lat[0][1] == Detector.TEMPORAL
    # without the time-of-week baseline, 200 is an everyday value of this series
    plain = DetectConfig(seasonal=SHORT_WEEK.model_copy(update={"enabled": False}))
    assert [e for e in run_latency(plain, at, at + 6) if e[1] == "origin_latency_p99_ms"] == []


def test_a_repeating_weekly_pattern_raises_nothing() -> None:
    cfg = DetectConfig(seasonal=SHORT_WEEK)
    entered = run_latency(cfg, 10**9, 7 * PERIOD)
    assert [e for e in entered if e[1] == "origin_latency_p99_ms" and e[0] > 3 * PERIOD] == []


def test_seasonal_state_is_saved_and_restored(tmp_path: Path) -> None:
    maker = FrameMaker(inventory([("sea01", 3)]))
    cfg = DetectConfig(seasonal=SHORT_WEEK)
    engine = DetectionEngine(cfg, maker.metrics)
    rng = np.random.default_rng(4)
    for _ in range(3 * PERIOD):
        engine.update(maker.frame(normal_values(3, rng)))
    path = tmp_path / "state.npz"
    engine.save(path)
    restored = DetectionEngine.load(path, cfg, maker.metrics)
    assert np.array_equal(restored.seasonal.profile, engine.seasonal.profile, equal_nan=True)
    assert np.array_equal(restored.seasonal.visits, engine.seasonal.visits)
    assert np.array_equal(restored.seasonal.kind, engine.seasonal.kind)
    assert restored.seasonal.slot == engine.seasonal.slot
    frame = maker.frame(normal_values(3, rng))
    a, b = engine.update(frame), restored.update(frame)
    assert np.array_equal(a.scores, b.scores, equal_nan=True)


def test_a_daily_pattern_is_taken_out_after_a_few_days_long_before_weeks() -> None:
    rng = np.random.default_rng(5)
    state = SeasonalState((1, 1), SHORT_DAY)
    values = [square(t) + rng.normal() for t in range(5 * PERIOD)]
    out = feed(state, values)
    # two days to know each bucket, a third to measure the errors: then the day's pattern
    # is used, while the week's buckets have not even been seen once
    assert out[: 2 * PERIOD] == [np.float32(v) for v in values[: 2 * PERIOD]]
    late = np.array(out[4 * PERIOD :])
    assert np.abs(late - 140.0).max() < 8.0
    assert state.kind[0, 0] == 2  # DAY
    assert int(state.visits[: 7 * 12].max()) == 1


def test_a_weekly_pattern_that_the_day_buckets_average_out_keeps_the_weekly_baseline() -> None:
    # high on the first "day" of each "week" only: the day's buckets average it out
    week = 7 * PERIOD

    def weekly(t: int) -> float:
        return 300.0 if t % week < PERIOD else 100.0

    rng = np.random.default_rng(6)
    state = SeasonalState((1, 1), SHORT_DAY)
    values = [weekly(t) + rng.normal() for t in range(4 * week)]
    out = feed(state, values)
    assert state.kind[0, 0] == 1  # WEEK
    late = np.array(out[-week:])
    assert np.abs(late - late.mean()).max() < 10.0


def test_a_value_normal_at_another_time_of_day_is_an_anomaly() -> None:
    cfg = DetectConfig(seasonal=SHORT_DAY)
    at = 6 * PERIOD + 3 * PERIOD // 4  # the middle of a low half, in the first "week"
    entered = run_latency(cfg, at, at + 6, kind="time-of-day")
    lat = [(t, d) for t, m, d in entered if m == "origin_latency_p99_ms"]
    assert lat
    assert lat[0][0] - at <= 3
    assert lat[0][1] == Detector.TEMPORAL


def test_a_repeating_daily_pattern_raises_nothing() -> None:
    cfg = DetectConfig(seasonal=SHORT_DAY)
    entered = run_latency(cfg, 10**9, 7 * PERIOD, kind="time-of-day")
    assert [e for e in entered if e[1] == "origin_latency_p99_ms" and e[0] > 3 * PERIOD] == []


def test_a_state_file_of_the_previous_format_starts_cold(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    maker = FrameMaker(inventory([("sea01", 2)]))
    cfg = DetectConfig(seasonal=SHORT_DAY)
    engine = DetectionEngine(cfg, maker.metrics)
    rng = np.random.default_rng(7)
    for _ in range(PERIOD):
        engine.update(maker.frame(normal_values(2, rng)))
    path = tmp_path / "state.npz"
    engine.save(path)
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    meta = json.loads(str(arrays["meta"]))
    meta["version"] = 3
    arrays["meta"] = np.array(json.dumps(meta))
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)
    with caplog.at_level(logging.WARNING, logger="cdnops.detect"):
        restored = DetectionEngine.load(path, cfg, maker.metrics)
    assert "starting cold" in caplog.text
    assert "format version 3" in caplog.text
    assert restored.ids == ()
    assert restored.seasonal.slot == -1
    assert restored.seasonal.visits.size == 0


def test_too_many_buckets_for_the_state_budget_are_refused() -> None:
    with pytest.raises(ValueError, match="5 x buckets \\+ 7 x day_buckets must not exceed 3500"):
        SeasonalConfig(buckets=672, day_buckets=48)
    assert SeasonalConfig(buckets=672, day_buckets=0).buckets == 672
    assert SeasonalConfig(buckets=336, day_buckets=260).day_buckets == 260


# a longer "day" (12 buckets of 6 ticks) for spikes: with one every 36 ticks the likelihood
# would learn them as normal by itself, which is not what these tests are about
SPIKY_DAY = SeasonalConfig(bucket_s=6 * TICK_S, buckets=7 * 12, day_buckets=12)
SPIKY_PERIOD = 6 * 12


def spiky_latency(cfg: SeasonalConfig, spikes: dict[int, float], ticks: int) -> list[int]:
    """One appliance's latency, noisy, with the value `spikes[t]` at each tick t of `spikes`.
    Returns the ticks where a latency anomaly entered."""
    maker = FrameMaker(inventory([("sea01", 1)]))
    engine = DetectionEngine(DetectConfig(seasonal=cfg), maker.metrics)
    rng = np.random.default_rng(8)
    entered = []
    for t in range(ticks):
        v = normal_values(1, rng)
        v[0, LAT] = spikes.get(t, v[0, LAT])
        r = engine.update(maker.frame(v))
        entered += [t for a in r.entered if a.metric == "origin_latency_p99_ms"]
    return entered


def daily_spikes(days: int, at: int, value: float = 400.0) -> dict[int, float]:
    """A spike of two ticks at tick `at` of every "day" (the hysteresis needs two)."""
    return {d * SPIKY_PERIOD + at + k: value for d in range(days) for k in range(2)}


def test_a_spike_at_the_same_time_every_day_is_an_anomaly_only_until_it_is_known() -> None:
    days, at = 8, SPIKY_PERIOD // 2  # the middle of the "day": bucket 6 of 12
    spikes = daily_spikes(days, at)
    entered = spiky_latency(SPIKY_DAY, spikes, days * SPIKY_PERIOD)
    # the first two days' spikes are anomalies; then the time of day is known for them
    assert [t // SPIKY_PERIOD for t in entered] == [0, 1]
    # without the usual peak, every day's spike is one
    plain = SPIKY_DAY.model_copy(update={"peak_ratio": 0.0})
    entered = spiky_latency(plain, spikes, days * SPIKY_PERIOD)
    assert [t // SPIKY_PERIOD for t in entered] == list(range(days))


def test_a_spike_at_another_time_of_day_or_well_above_the_usual_one_is_still_an_anomaly() -> None:
    days, at = 8, SPIKY_PERIOD // 2
    usual = daily_spikes(days, at)
    last = (days - 1) * SPIKY_PERIOD
    # the same spike at the end of the "day" (bucket 11), on the last day
    other = last + SPIKY_PERIOD - 4
    entered = spiky_latency(
        SPIKY_DAY, usual | {other: 400.0, other + 1: 400.0}, days * SPIKY_PERIOD
    )
    assert [t for t in entered if t >= last] == [other + 1]
    # at the usual time, but five times the usual spike's height above the level (84)
    big = usual | {last + at: 84.0 + 5 * 316.0, last + at + 1: 84.0 + 5 * 316.0}
    entered = spiky_latency(SPIKY_DAY, big, days * SPIKY_PERIOD)
    assert [t for t in entered if t >= last] == [last + at + 1]


def test_the_usual_peak_is_learned_per_time_of_day_and_judged_an_hour_either_side() -> None:
    state = SeasonalState((1, 2), SHORT_DAY)
    valid = np.ones((1, 2), np.bool_)
    base = 1_764_547_200.0  # 00:00 UTC: tick t is in bucket (t // 3) % 12 of the "day"
    scales = []
    for t in range(4 * PERIOD):
        x = np.zeros((1, 2), np.float32)
        state.adjust(x, valid, base + t * TICK_S)
        # column 0: a surprise of 40 once a day in bucket 6, 2 elsewhere; column 1: always 2
        raw = np.array([[40.0 if t % PERIOD == 19 else 2.0, 2.0]], np.float32)
        state.note_surprise(raw, valid)
        s = state.surprise_scale()
        scales.append(np.ones(2, np.float32) if s is None else s[0].copy())
    day3 = np.array(scales[3 * PERIOD :])
    bucket = np.arange(PERIOD) // 3
    # bucket 6 and the one either side: the surprise is judged smaller there, by about the
    # excess over `peak_ratio` times the usual peak (3 x 2 / 40); elsewhere it is not
    near = (bucket >= 5) & (bucket <= 7)
    assert np.all(day3[near, 0] < 0.25)
    assert np.all(day3[~near, 0] == 1.0)
    assert np.all(day3[:, 1] == 1.0)


def test_the_usual_peaks_are_saved_and_restored(tmp_path: Path) -> None:
    maker = FrameMaker(inventory([("sea01", 1)]))
    engine = DetectionEngine(DetectConfig(seasonal=SPIKY_DAY), maker.metrics)
    rng = np.random.default_rng(9)
    spikes = daily_spikes(4, SPIKY_PERIOD // 2)
    at = 3 * SPIKY_PERIOD + SPIKY_PERIOD // 2  # inside the spike's hour on the fourth day
    for t in range(at):
        v = normal_values(1, rng)
        v[0, LAT] = spikes.get(t, v[0, LAT])
        engine.update(maker.frame(v))
    assert engine.seasonal.surprise_scale() is not None
    path = tmp_path / "state.npz"
    engine.save(path)
    restored = DetectionEngine.load(path, DetectConfig(seasonal=SPIKY_DAY), maker.metrics)
    assert np.array_equal(restored.seasonal.peak, engine.seasonal.peak)
    assert restored.seasonal.peak.dtype == np.float16
    assert np.array_equal(restored.seasonal.scale, engine.seasonal.scale)
    assert restored.seasonal.surprise_scale() is not None
    v = normal_values(1, rng)
    v[0, LAT] = 400.0
    a, b = engine.update(maker.frame(v)), restored.update(maker.frame(v))
    assert np.array_equal(a.scores, b.scores, equal_nan=True)


def test_only_judged_surprises_count_towards_the_usual_peak() -> None:
    state = SeasonalState((1, 2), SHORT_DAY)
    state.adjust(np.zeros((1, 2), np.float32), np.ones((1, 2), np.bool_), 0.0)
    # a young series' (or a missing value's) surprise is left out; the other is kept
    state.note_surprise(np.array([[50.0, 7.0]], np.float32), np.array([[False, True]]))
    assert state.arrays["vmax"].tolist() == [[0.0, 7.0]]
    # without a mask, the cells without a value at the last adjust are left out
    state.adjust(np.zeros((1, 2), np.float32), np.array([[True, False]]), TICK_S)
    state.note_surprise(np.array([[3.0, 60.0]], np.float32))
    assert state.arrays["vmax"].tolist() == [[3.0, 7.0]]
