"""A real Control for the command tests: tracker, store, dry-run remediator, one open incident."""

from __future__ import annotations

import textwrap
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from fleetkit import T0, build_frame
from mqtt_events import INSTANCE, Rig, rig

from cdnops.config.incidents import IncidentsConfig
from cdnops.config.remediate import RemediateConfig
from cdnops.control import Control
from cdnops.incidents.tracker import IncidentTracker
from cdnops.model import (
    CONTRACT_METRICS,
    Anomaly,
    DetectionResult,
    Detector,
    FleetFrame,
)
from cdnops.remediate.engine import Remediator
from cdnops.remediate.loader import load_playbooks

FLEET = (("sea01-a", "sea01"), ("sea01-b", "sea01"))
PLAYBOOKS = """\
playbooks:
  - name: escalate-hot
    trigger: {metric: cpu_util}
    steps:
      - action: escalate
        params: {reason: "{{ incident.subject }} is hot"}
"""


def frame(ts: float = T0) -> FleetFrame:
    """A healthy frame of the two-appliance fleet."""
    n, m = len(FLEET), len(CONTRACT_METRICS)
    return build_frame(FLEET, ts=ts, values=np.arange(n * m, dtype=np.float64).reshape(n, m))


def hot(f: FleetFrame) -> DetectionResult:
    """sea01-a's cpu_util out of bounds."""
    a = Anomaly("sea01-a", "sea01", "cpu_util", Detector.BOUNDS, 0.99, 0.4, 0.9, T0 - 100, "hot")
    return DetectionResult(f.ts, f.seq, np.full(f.values.shape, np.nan), (a,), (a,), ())


@dataclass
class Ops:
    """The rig of the event tests plus the control side."""

    rig: Rig
    tracker: IncidentTracker
    remediator: Remediator
    control: Control
    incident_id: str


@asynccontextmanager
async def ops(tmp_path: Path, *, instance: str = INSTANCE) -> AsyncIterator[Ops]:
    """Everything on files under `tmp_path`, one incident open on sea01-a."""
    r = rig(tmp_path, instance=instance)
    books = tmp_path / "playbooks"
    books.mkdir()
    (books / "main.yaml").write_text(textwrap.dedent(PLAYBOOKS), encoding="utf-8")
    config = IncidentsConfig.model_validate({"triage": {"enabled": False}, "group_wait_s": 0})
    clock = lambda: T0  # noqa: E731
    with IncidentTracker(config, r.store, r.incidents, clock=clock) as tracker:
        f = frame()
        remediator = Remediator(
            RemediateConfig.model_validate({"dry_run": True}),
            load_playbooks([books]),
            r.store,
            r.remediation,
            token="appliance-token",
            clock=clock,
        )
        control = Control(
            tracker,
            r.store,
            latest=lambda: (f, None),
            remediator=remediator,
            clock=clock,
        )
        async with remediator:
            tracker.update(f, hot(f))
            remediator.feed.push(f)
            (inc,) = tracker.open_incidents()
            yield Ops(r, tracker, remediator, control, inc.id)
