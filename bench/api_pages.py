"""Benchmark: /api/v1/appliances pages on a 20,000-appliance fleet, through the real HTTP
server on 127.0.0.1, with 500 appliances anomalous.

Run: python bench/api_pages.py [--appliances 20000] [--requests 20]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import numpy as np
from prometheus_client import CollectorRegistry

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "tests" / "api")]
from api_fleet import anomaly, detection
from fleetkit import build_frame

from cdnops.api.auth import WriteAuth
from cdnops.api.server import HttpServer
from cdnops.api.v1 import build_api
from cdnops.config.incidents import IncidentsConfig, TriageConfig
from cdnops.control import Control
from cdnops.incidents.events import EventBus
from cdnops.incidents.tracker import IncidentTracker
from cdnops.model import CONTRACT_METRICS, Detector, PollFailure
from cdnops.store.db import Store


async def measure(n: int, requests: int, store_path: Path) -> dict[str, list[float]]:
    rng = np.random.default_rng(3)
    ids = [(f"s{i % 50:02d}-oca-{i:05d}", f"s{i % 50:02d}") for i in range(n)]
    values = np.round(rng.random((n, len(CONTRACT_METRICS))) * 1000, 3)
    failure = np.where(rng.random(n) < 0.01, PollFailure.TIMEOUT, PollFailure.OK)
    frame = build_frame(ids, values=values, failure=failure.tolist())
    sick = [anomaly(a, s, Detector.TEMPORAL) for a, s in ids[:: max(n // 500, 1)]]
    result = detection(frame, active=sick, scores=rng.random(values.shape))
    registry = CollectorRegistry()
    config = IncidentsConfig(triage=TriageConfig(enabled=False))
    with Store(store_path) as store, IncidentTracker(config, store, EventBus(registry)) as tracker:
        control = Control(tracker, store, latest=lambda: (frame, result))
        api = build_api(control, WriteAuth(None))
        server = HttpServer(
            host="127.0.0.1", port=0, registry=registry, per_appliance=False,
            latest=lambda: (frame, result), api=api,
        )  # fmt: skip
        async with server, aiohttp.ClientSession() as http:
            base = f"http://127.0.0.1:{server.port}/api/v1/appliances"
            cases = {
                "page of 100": {"limit": "100"},
                "page of 1000": {"limit": "1000"},
                "last page of 100": {"limit": "100", "offset": str(n - 100)},
                "anomalous only, 100": {"limit": "100", "anomalous": "true"},
                "one site, 100": {"limit": "100", "site": "s07"},
            }
            out: dict[str, list[float]] = {}
            for name, params in cases.items():
                times = []
                for _ in range(requests):
                    t0 = time.perf_counter()
                    async with http.get(base, params=params) as resp:
                        assert resp.status == 200, await resp.text()
                        await resp.read()
                    times.append(time.perf_counter() - t0)
                out[name] = times
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--appliances", type=int, default=20_000)
    parser.add_argument("--requests", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = asyncio.run(measure(args.appliances, args.requests, Path(tmp) / "cdnops.db"))
    print(
        f"# python {platform.python_version()}, {os.cpu_count()} cores, "
        f"{args.appliances} appliances x {len(CONTRACT_METRICS)} metrics, "
        f"{args.requests} requests each, client and server in one process"
    )
    for name, times in out.items():
        ms = sorted(t * 1000 for t in times)
        print(f"{name:22s} median {statistics.median(ms):6.1f} ms  best {ms[0]:6.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
