"""Poll phases: stable across processes and Poller instances, spread evenly over the interval."""

from __future__ import annotations

import subprocess
import sys

import numpy as np

from cdnops.model import Appliance, Inventory
from cdnops.poll.poller import Poller, PollerOptions
from cdnops.poll.schedule import phase_fraction, phases


def test_phases_of_1000_ids_spread_evenly() -> None:
    ids = [f"site{i // 40:02d}-oca-{i % 40:03d}" for i in range(1000)]
    p = phases(ids, 10.0)
    assert ((p >= 0) & (p < 10.0)).all()
    counts = np.histogram(p, bins=20, range=(0.0, 10.0))[0]
    # 50 expected per bucket; a uniform hash keeps every bucket well inside 50 +/- 25.
    assert counts.max() <= 75
    assert counts.min() >= 25
    assert len(set(p.tolist())) == 1000


def test_phase_is_the_same_in_another_process() -> None:
    code = "from cdnops.poll.schedule import phase_fraction; print(repr(phase_fraction('sea01-x')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert float(out.stdout) == phase_fraction("sea01-x")


async def test_phase_is_the_same_across_poller_instances() -> None:
    inv = Inventory(tuple(Appliance(f"a{i}", "s", f"http://127.0.0.1:1/a{i}") for i in range(50)))
    first = Poller(inv, PollerOptions(interval_s=10.0), autostart=False)
    second = Poller(inv, PollerOptions(interval_s=10.0), autostart=False)
    assert first.phases() == second.phases()
    assert first.phases()["a7"] == phase_fraction("a7") * 10.0
