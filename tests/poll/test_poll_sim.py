"""The poller against the project's simulator: a healthy fleet, injected faults, a reboot."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import numpy as np
import pytest

from cdnops.appliance.client import ApplianceClient
from cdnops.model import Appliance, HealthFormat, Inventory, PollFailure
from cdnops.poll.poller import Poller, PollerOptions
from cdnops.sim.server import SimServer, SimSpec

TOKEN = "poll-test-token"
OPTS = PollerOptions(interval_s=1.0, timeout_s=0.5, connect_timeout_s=0.5)


@pytest.fixture
async def sim() -> AsyncIterator[SimServer]:
    async with SimServer(
        SimSpec(appliances=50, sites=5, action_delay_scale=0.01), token=TOKEN
    ) as s:
        yield s


def inventory(sim: SimServer, fmt: HealthFormat = HealthFormat.JSON) -> Inventory:
    return Inventory(
        tuple(
            Appliance(str(e["id"]), str(e["site"]), str(e["url"]), health_format=fmt)
            for e in sim.inventory()
        )
    )


@pytest.mark.parametrize("fmt", [HealthFormat.JSON, HealthFormat.PROMETHEUS])
async def test_healthy_fleet_polls_clean(sim: SimServer, fmt: HealthFormat) -> None:
    inv = inventory(sim, fmt)
    async with Poller(inv, OPTS, autostart=False) as poller:
        await asyncio.wait_for(poller.tick_once(), 5)
        sim.skip(10.0)
        frame = await asyncio.wait_for(poller.tick_once(), 5)
    assert frame.n == 50
    assert (frame.failure == PollFailure.OK).all()
    assert len(frame.sites) == 5
    cols = [frame.metrics.index(m) for m in ("cpu_util", "egress_gbps", "requests_total")]
    assert frame.valid[:, cols].all()
    assert (frame.values[:, frame.metrics.index("requests_total")] >= 0).all()
    if fmt is HealthFormat.JSON:
        assert {"nginx", "bgp"} <= set(frame.services)
        assert (frame.state > 0).all()


@pytest.mark.parametrize(
    ("kind", "params", "failure"),
    [
        ("hung", {}, PollFailure.TIMEOUT),
        ("slow_health", {"delay_s": 5.0}, PollFailure.TIMEOUT),
        ("malformed", {"variant": "invalid_json"}, PollFailure.BAD_BODY),
        ("malformed", {"variant": "wrong_types"}, PollFailure.BAD_BODY),
        ("malformed", {"variant": "nan"}, PollFailure.BAD_BODY),
        ("malformed", {"variant": "oversized"}, PollFailure.TOO_LARGE),
    ],
)
async def test_injected_faults_are_classified(
    sim: SimServer, kind: str, params: dict[str, object], failure: PollFailure
) -> None:
    inv = inventory(sim)
    victim = inv.appliances[3].id
    sim.inject(kind, victim, **params)
    async with Poller(inv, OPTS, autostart=False) as poller:
        frame = await asyncio.wait_for(poller.tick_once(), 5)
    assert frame.failure[3] == failure
    others = np.delete(frame.failure, 3)
    assert (others == PollFailure.OK).all()


async def test_reboot_is_a_failed_poll_then_a_counter_reset(sim: SimServer) -> None:
    inv = inventory(sim)
    target = inv.appliances[0]
    col = OPTS.metrics.index("requests_total")
    async with Poller(inv, OPTS, autostart=False) as poller, ApplianceClient(TOKEN) as client:
        await poller.tick_once()
        sim.skip(10.0)
        before = await poller.tick_once()
        assert before.valid[0, col]
        action_id = await client.start_action(target, "reboot", {})
        down = await poller.tick_once()
        assert down.failure[0] in (PollFailure.CONNECTION, PollFailure.REFUSED)
        done = await client.wait_action(target, action_id, timeout_s=5, poll_interval_s=0.05)
        assert done.status == "succeeded"
        sim.skip(10.0)
        back = await poller.tick_once()
        stats = poller.stats
    assert back.failure[0] == PollFailure.OK
    assert back.uptime_s[0] < before.uptime_s[0]
    assert not back.valid[0, col]  # counters restarted lower: no rate for this poll
    assert stats.counter_resets >= 1
    assert not (back.values[back.valid] < 0).any()
