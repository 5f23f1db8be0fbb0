"""Benchmark: triage of 1,000 signals x 360 points (target <= 1 s), and tracker ticks.

Run: python bench/triage.py [--appliances 125] [--metrics 8] [--ticks 360] [--repeat 5]
         [--fleet 20000] [--sick 1000]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from prometheus_client import CollectorRegistry

from cdnops.config.incidents import IncidentsConfig, TriageConfig
from cdnops.incidents.events import EventBus
from cdnops.incidents.history import HistoryWindow
from cdnops.incidents.tracker import IncidentTracker
from cdnops.incidents.triage import TriageJob, run_triage
from cdnops.model import (
    CONTRACT_METRICS,
    Anomaly,
    Appliance,
    ApplianceState,
    DetectionResult,
    Detector,
    FleetFrame,
    Inventory,
)
from cdnops.store.db import Store

TRIGGER = "origin_latency_p99_ms"
CAUSE = "disk_errors_total"


def window(appliances: int, metrics: int, ticks: int, seed: int = 0) -> HistoryWindow:
    """A site's history: noise everywhere, one appliance's disk errors rising before latency."""
    names = (TRIGGER, CAUSE, *(m for m in CONTRACT_METRICS if m not in (TRIGGER, CAUSE)))
    names = names[:metrics] + tuple(f"extra_{i}" for i in range(metrics - len(names)))
    rng = np.random.default_rng(seed)
    v = (1.0 + 0.02 * rng.standard_normal((ticks, appliances, metrics))).astype(np.float32)
    onset = ticks * 3 // 4
    v[onset:, 0, 1] += 1.0
    v[onset + 4 :, :, 0] += 1.0
    ts = 1.7e9 + 10.0 * np.arange(ticks)
    return HistoryWindow(ts, v, tuple(f"sea01-a{i:03d}" for i in range(appliances)), names)


def bench_triage(args: argparse.Namespace) -> tuple[float, str]:
    w = window(args.appliances, args.metrics, args.ticks)
    apps = w.appliances
    job = TriageJob("bench", TRIGGER, apps, float(w.ts[args.ticks * 3 // 4 + 6]), w, 5, 6.0)
    run_triage(job)  # warm up
    times = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        signals = run_triage(job)
        times.append(time.perf_counter() - start)
    return statistics.median(times), signals[0].line


def fleet_frame(inv: Inventory, seq: int) -> FleetFrame:
    n, m = len(inv.appliances), len(CONTRACT_METRICS)
    sites = inv.sites
    site_of = {s: i for i, s in enumerate(sites)}
    return FleetFrame(
        ts=1.7e9 + 10.0 * seq,
        seq=seq,
        inventory=inv,
        site_index=np.array([site_of[a.site] for a in inv.appliances], np.int32),
        sites=sites,
        metrics=CONTRACT_METRICS,
        values=np.ones((n, m)),
        valid=np.ones((n, m), bool),
        failure=np.zeros(n, np.int8),
        state=np.full(n, ApplianceState.SERVING, np.int8),
        uptime_s=np.ones(n),
        services=(),
        service_status=np.zeros((n, 0), np.int8),
    )


def bench_tick(n: int, repeat: int, sick: int) -> tuple[float, float, int]:
    """Tracker ticks for n appliances with `sick` scattered anomalies held steady.

    Returns (first tick, which opens the incidents; median steady tick; history bytes).
    """
    sites = [f"s{i // 50:03d}" for i in range(n)]  # sites of 50 appliances
    inv = Inventory(tuple(Appliance(f"{s}-a{i:05d}", s, "http://x") for i, s in enumerate(sites)))
    step = max(n // sick, 1) if sick else n + 1
    active = tuple(
        Anomaly(a.id, a.site, "cpu_util", Detector.TEMPORAL, 0.9, 0.4, 0.5, 1.7e9, "bench")
        for a in inv.appliances[::step]
    )
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "bench.db")
        clock = [1.7e9]
        tracker = IncidentTracker(
            IncidentsConfig(), store, EventBus(CollectorRegistry()), clock=lambda: clock[0]
        )
        times = []
        for seq in range(repeat + 1):
            clock[0] += 10.0
            frame = fleet_frame(inv, seq)
            result = DetectionResult(
                clock[0], seq, np.zeros((n, 12)), active, active if seq == 0 else (), ()
            )
            start = time.perf_counter()
            tracker.update(frame, result)
            times.append(time.perf_counter() - start)
        nbytes = tracker.history.nbytes if tracker.history else 0
        tracker.close()
        store.close()
    return times[0], statistics.median(times[1:]), nbytes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--appliances", type=int, default=125)
    parser.add_argument("--metrics", type=int, default=8)
    parser.add_argument("--ticks", type=int, default=360)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--fleet", type=int, default=20_000, help="appliances for the tick bench")
    parser.add_argument("--sick", type=int, default=1000, help="active anomalies, tick bench")
    args = parser.parse_args()
    if args.appliances < 1 or args.metrics < 2 or args.ticks < 16 or args.repeat < 1:
        parser.error("need --appliances >= 1, --metrics >= 2, --ticks >= 16, --repeat >= 1")
    print(f"machine: {platform.machine()} {platform.processor() or ''} cpus={os.cpu_count()} "
          f"python={platform.python_version()} numpy={np.__version__}")  # fmt: skip
    print(f"command: {' '.join([sys.executable.rsplit('/', 1)[-1], *sys.argv])}")
    signals = args.appliances * args.metrics
    seconds, top = bench_triage(args)
    verdict = "ok" if seconds <= 1.0 else "OVER TARGET"
    print(f"triage: {signals} signals x {args.ticks} points: median {seconds * 1000:.1f} ms "
          f"of {args.repeat} (target <= 1000 ms: {verdict})")  # fmt: skip
    print(f"triage top signal: {top}")
    for sick in (0, args.sick):
        first, steady, nbytes = bench_tick(args.fleet, max(args.repeat, 6), sick)
        print(f"tracker tick, {args.fleet} appliances, {sick} active anomalies: first "
              f"{first * 1000:.1f} ms, then median {steady * 1000:.2f} ms")  # fmt: skip
    print(f"history: {TriageConfig().history_ticks} ticks x {args.fleet} x 12 float32 = "
          f"{nbytes / 1e6:.0f} MB")  # fmt: skip
    return 0 if seconds <= 1.0 else 1


if __name__ == "__main__":
    sys.exit(main())
