"""Benchmark: one Alertmanager notification of N alerts, each on its own appliance, taken in
by the intake on a real store: when they all open incidents, when they repeat, when they
resolve.

Run: python bench/intake.py [--alerts 1000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from cdnops.config.incidents import IncidentsConfig, TriageConfig
from cdnops.config.intake import AlertmanagerConfig
from cdnops.incidents.events import EventBus
from cdnops.incidents.tracker import IncidentTracker
from cdnops.intake.alertmanager import AlertmanagerIntake
from cdnops.store.db import Store

STARTS_AT = "2026-11-30T23:58:00Z"


def notification(n: int, status: str) -> dict[str, Any]:
    """A version 4 webhook body with `n` alerts on appliances edge-00000..."""
    alerts = [
        {
            "status": status,
            "labels": {"alertname": "EdgeDown", "appliance": f"edge-{i:05d}", "site": "sea01"},
            "annotations": {"summary": "edge down"},
            "startsAt": STARTS_AT,
            "endsAt": "0001-01-01T00:00:00Z" if status == "firing" else "2026-12-01T00:05:00Z",
            "generatorURL": "http://prometheus.example:9090/graph",
            "fingerprint": f"fp{i:014x}",
        }
        for i in range(n)
    ]
    return {
        "version": "4",
        "groupKey": '{}:{alertname="EdgeDown"}',
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "cdnops",
        "groupLabels": {},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.example:9093",
        "alerts": alerts,
    }


def one_round(path: Path, n: int) -> tuple[float, float, float]:
    """Seconds to open, repeat and resolve `n` alert incidents on a fresh store."""
    config = IncidentsConfig(triage=TriageConfig(enabled=False))
    intake_config = AlertmanagerConfig(max_alerts=max(n, 1))
    with Store(path) as store:
        tracker = IncidentTracker(config, store, EventBus(CollectorRegistry()))
        intake = AlertmanagerIntake(intake_config, tracker, store)
        firing, resolved = notification(n, "firing"), notification(n, "resolved")
        times = []
        for body in (firing, firing, resolved):
            t0 = time.perf_counter()
            intake.ingest(body)
            times.append(time.perf_counter() - t0)
        tracker.close()
    return times[0], times[1], times[2]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    # the daemon writes one line per incident event: format them all, into /dev/null
    devnull = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the process
    logging.basicConfig(stream=devnull, level=logging.INFO)
    rounds = []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeat):
            rounds.append(one_round(Path(tmp) / f"round{r}.db", args.alerts))
    print(
        f"# python {platform.python_version()}, {os.cpu_count()} cores, "
        f"{args.alerts} alerts per notification, {args.repeat} rounds on fresh stores"
    )
    for i, what in enumerate(("open", "repeat", "resolve")):
        ms = [x[i] * 1000 for x in rounds]
        per = statistics.median(ms) * 1000 / args.alerts
        print(
            f"{what:8s} median {statistics.median(ms):7.1f} ms  (min {min(ms):.1f}, "
            f"max {max(ms):.1f})  {per:.0f} us per alert"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
