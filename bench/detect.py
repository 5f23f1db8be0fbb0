"""Detection speed: one tick of the whole engine on a large fleet, against plain Python."""

from __future__ import annotations

import argparse
import math
import os
import platform
import shlex
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

# Run from a checkout without installing: the project root goes first on the path.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cdnops.config.detect import DetectConfig, TemporalConfig
from cdnops.detect.engine import DetectionEngine
from cdnops.detect.seasonal import WEEK
from cdnops.detect.windows import TemporalParams
from cdnops.model import (
    CONTRACT_METRICS,
    Appliance,
    ApplianceState,
    FleetFrame,
    Inventory,
    ServiceStatus,
)

SERVICES = ("nginx", "cache", "bgp")


def fleet(n: int, sites: int) -> tuple[Inventory, np.ndarray]:
    """n appliances spread over `sites` sites; returns the inventory and the site index."""
    site_index = (np.arange(n) % sites).astype(np.int32)
    inv = Inventory(
        tuple(
            Appliance(f"s{int(s):03d}-oca-{i:05d}", f"s{int(s):03d}", f"http://127.0.0.1/a/{i}")
            for i, s in enumerate(site_index)
        )
    )
    return inv, site_index


def frames(inv: Inventory, site_index: np.ndarray, ticks: int) -> list[FleetFrame]:
    """Noisy healthy frames (a few invalid cells) for `ticks` ticks."""
    n, m = len(inv.appliances), len(CONTRACT_METRICS)
    rng = np.random.default_rng(0)
    # healthy values of the contract's metrics; siblings alike up to 5 %
    typical = np.array([0.4, 0.6, 38.0, 5e4, 0.97, 4e-4, 84.0, 2e-3, 51.0, 3e3, 0.0, 0.0])
    base = typical * rng.uniform(0.95, 1.05, size=(n, m))
    sites = inv.sites
    out = []
    for t in range(ticks):
        values = base * (1.0 + 0.01 * rng.standard_normal((n, m)))
        valid = rng.random((n, m)) > 0.001
        values[~valid] = np.nan
        out.append(
            FleetFrame(
                ts=1.0e9 + 10.0 * t, seq=t, inventory=inv, site_index=site_index, sites=sites,
                metrics=CONTRACT_METRICS, values=values, valid=valid,
                failure=np.zeros(n, np.int8), state=np.full(n, ApplianceState.SERVING, np.int8),
                uptime_s=np.full(n, 1e5), services=SERVICES,
                service_status=np.full((n, len(SERVICES)), ServiceStatus.RUNNING, np.int8),
            )
        )  # fmt: skip
    return out


def state_bytes(engine: DetectionEngine) -> int:
    """Bytes of numpy state held by the engine (all detectors and hysteresis)."""
    arrays = [*engine.temporal.arrays.values(), engine.temporal.count, engine.temporal.seeded]
    se = engine.seasonal
    arrays += [*se.arrays.values(), se.profile, se.visits, se.offset, se.kind, se.peak, se.scale]
    tr = engine.trend
    arrays += [tr.level, tr.slope, tr.count, tr.resid, engine.reach_runs, engine.service_runs]
    for h in (engine.h_metric, engine.h_reach, engine.h_service):
        arrays += [h.bits, h.active, h.clean]
    return sum(a.nbytes for a in arrays)


class PlainTemporal:
    """The temporal detector's math for one series, in plain Python (the reference)."""

    def __init__(self, p: TemporalParams) -> None:
        self.p = p
        self.mean_f = self.var_f = self.mean_s = self.var_s = 0.0
        self.r_short = self.r_mean = self.r_var = 0.0
        self.peak = 0.0
        self.count = 0

    def update(self, x: float) -> float:
        p = self.p
        if self.count == 0:
            self.mean_f = self.mean_s = x
        inv = 1.0 / (self.count + 1)
        floor2 = self.mean_s * self.mean_s * p.rel_floor2 + p.abs_floor2
        raw = 0.0
        for scale, a in (("s", p.a_slow), ("f", p.a_fast)):
            mean, var = getattr(self, "mean_" + scale), getattr(self, "var_" + scale)
            sd = math.sqrt(var + floor2)
            dev = x - mean
            raw = max(raw, abs(dev / sd))
            lim = math.inf if self.count < 8 else sd * p.clip
            d = min(max(dev, -lim), lim)
            w = max(inv, a)
            setattr(self, "mean_" + scale, mean + d * w)
            setattr(self, "var_" + scale, (1 - w) * var + w * (1 - w) * d * d)
        self.r_short += (raw - self.r_short) * max(inv, p.a_short)
        zr = max((self.r_short - self.r_mean) / math.sqrt(self.r_var + 1e-6), 0.0)
        lt = -math.log10(max(0.5 * math.erfc(zr / math.sqrt(2.0)), 1e-300))
        d = min(raw - self.r_mean, 3.0 * math.sqrt(self.r_var) + 1.0)
        w = max(inv, p.a_long)
        self.r_mean += d * w
        self.r_var = (1 - w) * self.r_var + w * (1 - w) * d * d
        score = lt / (lt + 5.0)
        if p.record_ratio and raw >= p.record_min:
            t = min(raw / (self.peak * p.record_ratio + 1e-6), 100.0) ** 4
            score = max(score, t / (1.0 + t))
        if self.count >= 8:
            self.peak = max(self.peak * p.record_decay, raw)
        self.count += 1
        return score


def plain_points_per_s(p: TemporalParams, series: int, ticks: int) -> float:
    """Points per second of the plain per-series implementation on `series` series."""
    rng = np.random.default_rng(1)
    data = (50.0 + rng.standard_normal((ticks, series))).tolist()
    detectors = [PlainTemporal(p) for _ in range(series)]
    start = time.perf_counter()
    for row in data:
        for det, x in zip(detectors, row, strict=True):
            det.update(x)
    return series * ticks / (time.perf_counter() - start)


def cpu_model() -> str:
    """The CPU model name, from /proc/cpuinfo where there is one."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def tick_times(
    engine: DetectionEngine, data: list[FleetFrame], ticks: int, cpu: list[float] | None = None
) -> list[float]:
    """Seconds taken by each of `ticks` updates; their CPU seconds go to `cpu` (this
    thread's CPU time, which other work on a shared machine disturbs less than the wall
    clock, though it still shares caches and memory bandwidth)."""
    times = []
    for t in range(ticks):
        start, start_cpu = time.perf_counter(), time.thread_time()
        engine.update(data[t % len(data)])
        times.append(time.perf_counter() - start)
        if cpu is not None:
            cpu.append(time.thread_time() - start_cpu)
    return times


def aged_tick_ms(engine: DetectionEngine, data: list[FleetFrame], ticks: int) -> float:
    """Median ms per tick once every series is older than its longest window (a daemon
    that has run for hours), where the EWMA weights are constants, not per-cell weights."""
    engine.temporal.count = engine.temporal.count + 10 * TemporalConfig().long_ticks
    return statistics.median(tick_times(engine, data, ticks)) * 1e3


def patterned_tick_ms(engine: DetectionEngine, data: list[FleetFrame], ticks: int) -> float:
    """Median ms per tick once every series has a known time-of-week pattern and a usual
    peak: the value less its bucket's offset is one more pass (the benchmark's few minutes
    of frames never learn one, so they are set as the hourly fold would have)."""
    se = engine.seasonal
    rng = np.random.default_rng(2)
    # a small departure of each series' own size: the verdicts stay those of a healthy fleet
    typical = np.nan_to_num(np.abs(data[0].values))
    offset = (typical * 1e-3 * rng.standard_normal(se.offset.shape)).astype(se.offset.dtype)
    # and a usual peak at this hour that scales every surprise (by a factor that changes
    # no verdict), so the likelihood's extra multiply is timed too
    scale = np.full(se.scale.shape, 0.999, se.scale.dtype)
    se.set_offset_array(offset, np.full(se.kind.shape, WEEK, se.kind.dtype), scale)
    return statistics.median(tick_times(engine, data, ticks)) * 1e3


def boundary_tick_ms(engine: DetectionEngine, data: list[FleetFrame], ticks: int) -> list[float]:
    """Ms of ticks that each cross a seasonal bucket boundary (once per `bucket_s`, an hour by
    default): the visit's mean is folded into its buckets and the next offsets are set."""
    times = []
    bucket_s = engine.config.seasonal.bucket_s
    for t in range(ticks):
        frame = replace(data[t % len(data)], ts=(engine.seasonal.slot + 1) * bucket_s + 1.0)
        start = time.perf_counter()
        engine.update(frame)
        times.append(time.perf_counter() - start)
    return times


def main(argv: list[str] | None = None) -> int:
    """Print the machine, then ms per tick, points per second, state bytes and the ratio."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--appliances", type=int, default=20_000)
    parser.add_argument("--sites", type=int, default=100)
    parser.add_argument("--ticks", type=int, default=60, help="measured ticks after warm-up")
    parser.add_argument("--warmup", type=int, default=40, help="ticks before measuring")
    args = parser.parse_args(argv)
    print("command:", shlex.join([sys.executable, *sys.argv]))
    print(
        f"machine: {os.cpu_count()} cores, {cpu_model()}, Python {platform.python_version()}, "
        f"numpy {np.__version__}, OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '-')}"
    )
    inv, site_index = fleet(args.appliances, args.sites)
    data = frames(inv, site_index, 8)
    engine = DetectionEngine(DetectConfig(), CONTRACT_METRICS)
    for t in range(args.warmup):
        engine.update(data[t % len(data)])
    cpu: list[float] = []
    times = tick_times(engine, data, args.ticks, cpu)
    points = args.appliances * len(CONTRACT_METRICS)
    ms = statistics.median(times) * 1e3
    series = points
    print(
        f"fleet: {args.appliances} appliances x {len(CONTRACT_METRICS)} metrics "
        f"= {points} series in {args.sites} sites, every detector on"
    )
    print(
        f"engine tick: median {ms:.2f} ms (min {min(times) * 1e3:.2f}, "
        f"max {max(times) * 1e3:.2f}) over {args.ticks} ticks"
    )
    cpu_ms = statistics.median(cpu) * 1e3
    print(f"engine tick CPU time: median {cpu_ms:.2f} ms (min {min(cpu) * 1e3:.2f})")
    vector_pps = points / (ms / 1e3)
    print(
        f"engine: {vector_pps / 1e6:.1f} M points/s "
        f"({points / (cpu_ms / 1e3) / 1e6:.1f} M per CPU second)"
    )
    aged = aged_tick_ms(engine, data, args.ticks)
    print(f"engine tick, series past every window: median {aged:.2f} ms, "
          f"{points / aged / 1e3:.1f} M points/s")  # fmt: skip
    patterned = patterned_tick_ms(engine, data, args.ticks)
    print(f"engine tick, every series with a time-of-week pattern: median {patterned:.2f} ms, "
          f"{points / patterned / 1e3:.1f} M points/s")  # fmt: skip
    edges = boundary_tick_ms(engine, data, 5)
    print(f"engine tick crossing a seasonal bucket (once per hour): median "
          f"{statistics.median(edges) * 1e3:.1f} ms over {len(edges)}")  # fmt: skip
    print(f"state: {state_bytes(engine) / series:.0f} bytes per series")
    plain = plain_points_per_s(engine.temporal.params, 2000, 20)
    print(f"plain Python temporal detector: {plain / 1e6:.3f} M points/s (2000 series x 20 ticks)")
    print(f"ratio engine (all detectors) / plain (temporal only): {vector_pps / plain:.0f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
