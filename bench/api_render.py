"""Benchmark of the HTTP side: per-appliance render, gzip, and the observer hot paths.

Run from the repository root:
`python bench/api_render.py [--appliances N] [--repeat R]`.
Prints the best and median wall time and the best CPU time of R runs; wall figures on a
shared machine are noisy.
"""

from __future__ import annotations

import argparse
import gzip
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from prometheus_client import CollectorRegistry, generate_latest

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "tests" / "api")]
from api_fleet import detection
from fleetkit import build_frame

from cdnops.api.appliances import render_appliances
from cdnops.api.metrics import DaemonMetrics
from cdnops.api.server import GZIP_LEVEL
from cdnops.model import CONTRACT_METRICS, FleetFrame, PollFailure


def timed(fn: Callable[[], object], repeat: int) -> tuple[float, float, float]:
    """(best wall, median wall, best CPU) time of `fn` in seconds.

    CPU time (this thread's) is less disturbed than wall time by other work on the machine.
    """
    walls, cpus = [], []
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.thread_time()
        fn()
        cpus.append(time.thread_time() - cpu)
        walls.append(time.perf_counter() - wall)
    return min(walls), statistics.median(walls), min(cpus)


def realistic_frame(n: int) -> FleetFrame:
    """n appliances in 50 sites; values with the precision appliances report, 2% invalid."""
    rng = np.random.default_rng(7)
    ids = [(f"s{i % 50:02d}-oca-{i:05d}", f"s{i % 50:02d}") for i in range(n)]
    values = np.round(rng.random((n, len(CONTRACT_METRICS))) * 1000, 3)
    valid = rng.random(values.shape) > 0.02
    failure = np.where(rng.random(n) < 0.01, PollFailure.TIMEOUT, PollFailure.OK)
    return build_frame(ids, values=values, valid=valid, failure=failure.tolist())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--appliances", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    frame = realistic_frame(args.appliances)
    scores = np.random.default_rng(8).random(frame.values.shape)
    result = detection(frame, scores=scores)
    body = render_appliances(frame, result)
    print(f"appliances={frame.n} metrics={len(frame.metrics)} body_bytes={len(body)}")
    report: dict[str, Callable[[], object]] = {
        "render (metrics only)": lambda: render_appliances(frame, None),
        "render (metrics + scores)": lambda: render_appliances(frame, result),
        f"gzip level {GZIP_LEVEL}": lambda: gzip.compress(body, GZIP_LEVEL),
    }
    registry = CollectorRegistry()
    metrics = DaemonMetrics(registry, instance="bench", version="0")
    polls = 100_000
    sites = frame.sites

    def poll_many() -> None:
        for i in range(polls):
            metrics.poll_done(sites[i % len(sites)], PollFailure.OK, 0.002)

    report[f"poll_done x{polls}"] = poll_many
    report["tick_done"] = lambda: metrics.tick_done(frame, 0.003)
    report["detection_done"] = lambda: metrics.detection_done(result)
    report["/metrics generate_latest"] = lambda: generate_latest(registry)
    for name, fn in report.items():
        best, median, cpu = timed(fn, args.repeat)
        print(
            f"{name:28s} wall best={best * 1000:8.1f} ms  median={median * 1000:8.1f} ms"
            f"  cpu best={cpu * 1000:8.1f} ms"
        )
    print(f"gzipped_bytes={len(gzip.compress(body, GZIP_LEVEL))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
