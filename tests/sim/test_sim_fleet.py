"""The fleet model: diurnal curve, simulated clock speed, and a 20,000-appliance fleet."""

from __future__ import annotations

import re
import time

import aiohttp
import numpy as np
import pytest
from sim_helpers import TOKEN, health, until

from cdnops.sim.fleet import diurnal
from cdnops.sim.server import SimServer, SimSpec
from cdnops.sim.topology import SimSpec as Spec
from cdnops.sim.topology import build_topology, site_codes


def test_diurnal_curve_is_low_at_dawn_and_high_in_the_evening() -> None:
    hours = np.arange(0.0, 24.0, 0.25)
    level = diurnal(hours)
    assert 4.5 <= hours[level.argmin()] <= 6.5
    assert 19.0 <= hours[level.argmax()] <= 21.5
    assert 0.2 < level.min() < 0.4
    assert 0.9 < level.max() <= 1.0


def test_topology_spreads_appliances_and_names_them() -> None:
    topo = build_topology(Spec(appliances=25, sites=3))
    assert topo.sites == ("sea01", "ams02", "fra01")
    assert [len(topo.site_rows[s]) for s in topo.sites] == [9, 8, 8]
    assert topo.ids[:2] == ("sea01-oca-001", "sea01-oca-002")
    assert topo.labels[0]["region"] == "us-west"
    assert len({c for c, _, _ in site_codes(100)}) == 100


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"appliances": 0}, "appliances must be in 1..100000, got 0"),
        ({"sites": 300}, "sites must be in 1..appliances, got 300"),
        ({"speed": 0.0}, "speed must be a number > 0, got 0.0"),
        ({"action_delay_scale": -1.0}, "action_delay_scale must be >= 0, got -1.0"),
    ],
)
def test_spec_rejects_bad_sizes(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        Spec(**kwargs)  # type: ignore[arg-type]


async def test_speed_runs_the_appliance_clock_faster_with_monotonic_counters(
    client: aiohttp.ClientSession,
) -> None:
    async with SimServer(SimSpec(appliances=2, sites=1, speed=3600.0), token=TOKEN) as sim:
        first = await health(client, sim, "sea01-oca-001")
        seen = [first["metrics"]["requests_total"]]

        async def five_minutes_later() -> bool:
            doc = await health(client, sim, "sea01-oca-001")
            seen.append(doc["metrics"]["requests_total"])
            return bool(doc["ts"] - first["ts"] > 300)

        await until(five_minutes_later)
        later = await health(client, sim, "sea01-oca-001")
    assert later["uptime_s"] - first["uptime_s"] > 300
    assert seen == sorted(seen)
    # About 300 s at tens of Gbps and 130 requests/s per Gbps.
    assert later["metrics"]["requests_total"] - first["metrics"]["requests_total"] > 100_000


async def test_twenty_thousand_appliances_start_fast(client: aiohttp.ClientSession) -> None:
    started = time.monotonic()
    async with SimServer(SimSpec(appliances=20_000, sites=100), token=TOKEN) as sim:
        elapsed = time.monotonic() - started
        last = sim.inventory()[-1]
        async with client.get(f"{last['url']}/health") as resp:
            doc = await resp.json()
    assert elapsed < 5
    assert doc["appliance"] == last["id"]
    assert len(sim.engine.topology.ids) == 20_000
