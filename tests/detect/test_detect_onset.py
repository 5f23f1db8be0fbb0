"""An anomaly's onset: when its evidence started, before the hysteresis confirmed it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from detect_frames import TICK_S, FrameMaker, inventory, normal_values

from cdnops.config.detect import DetectConfig, TemporalConfig
from cdnops.detect.engine import DetectionEngine
from cdnops.detect.hysteresis import Hysteresis
from cdnops.model import (
    CONTRACT_METRICS,
    Anomaly,
    DetectionResult,
    Detector,
    PollFailure,
    ServiceStatus,
)

COL = {name: j for j, name in enumerate(CONTRACT_METRICS)}
NO_TEMPORAL = DetectConfig(temporal=TemporalConfig(enabled=False))
N = 14


def feed(
    engine: DetectionEngine, maker: FrameMaker, ticks: int, n: int = N, **kw: np.ndarray
) -> list[float]:
    """`ticks` healthy ticks (with `kw` passed to every frame); returns their timestamps."""
    rng = np.random.default_rng(5)
    out = []
    for _ in range(ticks):
        frame = maker.frame(normal_values(n, rng), **kw)
        engine.update(frame)
        out.append(frame.ts)
    return out


def only(result: DetectionResult) -> Anomaly:
    assert len(result.entered) == 1, result.entered
    return result.entered[0]


def test_first_fired_ago_is_the_oldest_firing_tick_in_the_window() -> None:
    h = Hysteresis((3,), enter=2, window=3, clear=1)
    rows = [
        np.array([True, False, True]),
        np.array([False, True, True]),
        np.array([True, True, False]),
    ]
    for fired in rows:
        entered, _ = h.update(fired)
    # cell 0 fired 2 ticks ago and now; cell 1 the last two ticks; cell 2 entered earlier
    assert entered.tolist() == [True, True, False]
    assert h.first_fired_ago(entered).tolist() == [2, 1]
    assert h.first_fired_ago(np.array([False, False, False])).tolist() == []


def test_metric_onset_is_the_first_firing_tick_not_the_entry() -> None:
    maker = FrameMaker(inventory([("sea01", 8), ("fra02", 6)]))
    engine = DetectionEngine(NO_TEMPORAL, maker.metrics)
    times = feed(engine, maker, 3)
    rng = np.random.default_rng(6)
    hot = []
    for _ in range(2):  # above the 85 C bound twice: enters on the second (2 of 3)
        v = normal_values(N, rng)
        v[5, COL["temperature_c"]] = 95.0
        frame = maker.frame(v)
        hot.append(frame.ts)
        result = engine.update(frame)
    a = only(result)
    assert (a.appliance, a.detector) == ("sea01-oca-005", Detector.BOUNDS)
    assert a.since_ts == hot[1]
    assert a.onset_ts == hot[0] == hot[1] - TICK_S
    assert times[-1] < a.onset_ts


def test_metric_onset_from_before_a_restart_is_dated_from_the_tick_length(
    tmp_path: Path,
) -> None:
    # a restored engine has firing bits from before its ring of timestamps
    maker = FrameMaker(inventory([("sea01", 4)]))
    engine = DetectionEngine(NO_TEMPORAL, maker.metrics)
    feed(engine, maker, 3, n=4)
    v = normal_values(4, np.random.default_rng(6))
    v[1, COL["temperature_c"]] = 95.0
    first = maker.frame(v)
    assert engine.update(first).entered == ()
    engine.save(tmp_path / "detect.npz")
    restored = DetectionEngine.load(tmp_path / "detect.npz", NO_TEMPORAL, maker.metrics)
    a = only(restored.update(maker.frame(v)))
    assert a.onset_ts == first.ts == a.since_ts - TICK_S


def test_reachability_onset_is_the_first_failed_poll_of_the_run() -> None:
    maker = FrameMaker(inventory([("sea01", 8), ("fra02", 6)]))
    engine = DetectionEngine(NO_TEMPORAL, maker.metrics)
    feed(engine, maker, 2)
    fail = np.zeros(N, np.int8)
    fail[2] = PollFailure.TIMEOUT  # 3 in a row by default
    times = feed(engine, maker, 2, failure=fail)
    frame = maker.frame(normal_values(N, np.random.default_rng(1)), failure=fail)
    result = engine.update(frame)
    a = only(result)
    assert (a.metric, a.since_ts) == ("reachability", frame.ts)
    assert a.onset_ts == times[0]


def test_failed_polls_confirmed_within_a_tick_make_it_unreachable_at_once() -> None:
    maker = FrameMaker(inventory([("sea01", 8), ("fra02", 6)]))
    engine = DetectionEngine(NO_TEMPORAL, maker.metrics)
    feed(engine, maker, 2, fail_streak=np.zeros(N, np.int32))
    rng = np.random.default_rng(1)
    fail, streak = np.zeros(N, np.int8), np.zeros(N, np.int32)
    fail[2], streak[2] = PollFailure.TIMEOUT, 2  # a poll and one re-poll failed
    assert engine.update(maker.frame(normal_values(N, rng), failure=fail, fail_streak=streak))
    assert engine.active == ()
    streak[2] = 3  # the second re-poll, in the next tick
    frame = maker.frame(normal_values(N, rng), failure=fail, fail_streak=streak)
    a = only(engine.update(frame))
    assert a.metric == "reachability"
    assert a.explanation == "3 consecutive failed polls (last: timeout)"
    assert a.onset_ts == frame.ts - TICK_S  # the tick of the first failed poll
    # a tick without a finished poll (a re-poll straddling the boundary) is no news: the
    # appliance stays unreachable
    fail[2] = PollFailure.NOT_POLLED
    r = engine.update(maker.frame(normal_values(N, rng), failure=fail, fail_streak=streak))
    assert (r.cleared, [x.metric for x in engine.active]) == ((), ["reachability"])
    fail[2], streak[2] = PollFailure.OK, 0
    r = engine.update(maker.frame(normal_values(N, rng), failure=fail, fail_streak=streak))
    assert [x.metric for x in r.cleared] == ["reachability"]


def test_service_onset_is_the_first_failed_answer() -> None:
    maker = FrameMaker(inventory([("sea01", 8), ("fra02", 6)]))
    maker.services = ("nginx",)
    cfg = DetectConfig.model_validate(
        {"temporal": {"enabled": False}, "services": {"failed_ticks": 2}}
    )
    engine = DetectionEngine(cfg, maker.metrics)
    status = np.full((N, 1), ServiceStatus.RUNNING, np.int8)
    feed(engine, maker, 2, service_status=status)
    status[7, 0] = ServiceStatus.FAILED
    times = feed(engine, maker, 1, service_status=status)
    frame = maker.frame(normal_values(N, np.random.default_rng(2)), service_status=status)
    result = engine.update(frame)
    a = only(result)
    assert (a.metric, a.since_ts) == ("service:nginx", frame.ts)
    assert a.onset_ts == times[0] == frame.ts - TICK_S


def test_onset_survives_a_saved_and_restored_engine(tmp_path: Path) -> None:
    maker = FrameMaker(inventory([("sea01", 8)]))
    engine = DetectionEngine(NO_TEMPORAL, maker.metrics)
    rng = np.random.default_rng(4)
    for _ in range(2):
        v = normal_values(8, rng)
        v[0, COL["temperature_c"]] = 95.0
        engine.update(maker.frame(v))
    (before,) = engine.active
    engine.save(tmp_path / "detect.npz")
    restored = DetectionEngine.load(tmp_path / "detect.npz", NO_TEMPORAL, maker.metrics)
    (after,) = restored.active
    assert after == before
    assert after.onset_ts == after.since_ts - TICK_S


def test_firing_marks_unconfirmed_evidence_per_appliance() -> None:
    maker = FrameMaker(inventory([("sea01", 8), ("fra02", 6)]))
    engine = DetectionEngine(NO_TEMPORAL, maker.metrics)
    feed(engine, maker, 3)
    v = normal_values(N, np.random.default_rng(9))
    v[2, COL["temperature_c"]] = 99.0  # above its bound: fires, not yet confirmed
    failure = np.full(N, PollFailure.OK, np.int8)
    failure[9] = PollFailure.TIMEOUT  # one failed poll: far from unreachable, but evidence
    result = engine.update(maker.frame(v, failure=failure))
    assert result.active == ()
    assert result.firing is not None
    assert np.flatnonzero(result.firing).tolist() == [2, 9]
