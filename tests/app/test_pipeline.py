"""Poll -> detect inside one daemon, against the simulator: anomalies reach logs and /metrics."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import yaml

from cdnops.app import Daemon, load_all
from cdnops.sim.server import SimServer, SimSpec

TOKEN = "pipeline-token"


@pytest.fixture
async def sim() -> AsyncIterator[SimServer]:
    spec = SimSpec(appliances=24, sites=3, action_delay_scale=0.02)
    async with SimServer(spec, token=TOKEN) as s:
        yield s


@pytest.fixture
async def daemon(
    sim: SimServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Daemon]:
    monkeypatch.setenv("CDNOPS_PIPELINE_TOKEN", TOKEN)
    sim.write_inventory(tmp_path / "inventory.yaml")
    config = {
        "inventory": "inventory.yaml",
        "state_dir": "state",
        "appliance_token": {"env": "CDNOPS_PIPELINE_TOKEN"},
        "poll": {"interval_s": 0.25, "timeout_s": 0.2},
        "http": {"port": 0},
    }
    (tmp_path / "cdnops.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    d = Daemon(tmp_path / "cdnops.yaml", load_all(tmp_path / "cdnops.yaml"))
    task = asyncio.create_task(d.run())
    await asyncio.wait_for(d.ready.wait(), 10)
    yield d
    d.request_stop()
    assert await asyncio.wait_for(task, 15) == 0


async def wait_for_metric(daemon: Daemon, line: str, max_ticks: int = 60) -> str:
    """Scrape /metrics after each tick until it holds `line`; fails after `max_ticks`."""
    assert daemon.http_port is not None
    async with aiohttp.ClientSession() as s:
        for _ in range(max_ticks):
            await asyncio.wait_for(daemon.wait_ticks(1), 5)
            async with s.get(f"http://127.0.0.1:{daemon.http_port}/metrics") as r:
                text = await r.text()
            if line in text:
                return text
    raise AssertionError(f"{line!r} not in /metrics after {max_ticks} ticks:\n{text}")


async def test_a_crashed_service_is_an_anomaly_in_logs_and_metrics(
    daemon: Daemon, sim: SimServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="cdnops")
    target = sim.inventory()[5]
    sim.inject("service_crash", str(target["id"]), service="nginx")
    text = await wait_for_metric(
        daemon, f'cdnops_anomalies{{detector="service",site="{target["site"]}"}} 1.0'
    )
    ok_polls = re.findall(r'^cdnops_polls_total\{[^}]*result="ok"[^}]*\} (\S+)$', text, re.M)
    assert sum(float(v) for v in ok_polls) > 0
    entered = [r.getMessage() for r in caplog.records if "anomaly entered" in r.getMessage()]
    assert any(
        f"appliance={target['id']}" in m and "metric=service:nginx" in m and "is failed" in m
        for m in entered
    ), entered


async def test_a_hung_appliance_becomes_a_reachability_anomaly(
    daemon: Daemon, sim: SimServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="cdnops")
    target = sim.inventory()[9]
    sim.inject("hung", str(target["id"]))
    await wait_for_metric(
        daemon,
        f'cdnops_anomalies{{detector="reachability",site="{target["site"]}"}} 1.0',
    )
    assert any(
        f"appliance={target['id']}" in r.getMessage() and "last: timeout" in r.getMessage()
        for r in caplog.records
    )
