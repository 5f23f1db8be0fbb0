"""A steady engine's tick reuses heap memory instead of faulting in fresh pages."""

from __future__ import annotations

import resource
import sys

import numpy as np
import pytest
from detect_frames import FrameMaker, inventory, normal_values

from cdnops.config.detect import DetectConfig
from cdnops.detect.engine import DetectionEngine
from cdnops.detect.heap import keep_heap

glibc_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt")


@glibc_only
def test_keep_heap_applies_once_and_says_so() -> None:
    assert keep_heap() is True
    assert keep_heap() is True


@glibc_only
def test_a_steady_tick_faults_in_no_fresh_pages() -> None:
    # the benchmark's fleet size: with glibc's default policy, every tick of this engine
    # once past its young ticks faulted in about 500 fresh pages
    n = 20_000
    maker = FrameMaker(inventory([(f"s{k:03d}", 100) for k in range(n // 100)]))
    engine = DetectionEngine(DetectConfig(), maker.metrics)
    rng = np.random.default_rng(0)
    frames = [maker.frame(normal_values(n, rng)) for _ in range(4)]
    for f in frames[:3]:
        engine.update(f)
    # as after hours of running: every series past its longest window
    engine.temporal.count = engine.temporal.count + 20_000
    engine.update(frames[3])
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for f in frames:
        engine.update(f)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    assert faults < 60 * len(frames)
