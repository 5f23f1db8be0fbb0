"""The daemon as users run it: a real `cdnops run` subprocess against the simulator."""

from __future__ import annotations

import re
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import yaml
from daemon_proc import DaemonProcess

from cdnops.sim.server import SimServer, SimSpec

TOKEN = "test-token-not-a-secret"
ENV = {"CDNOPS_TEST_TOKEN": TOKEN}


@pytest.fixture
async def sim() -> AsyncIterator[SimServer]:
    async with SimServer(
        SimSpec(appliances=40, sites=4, action_delay_scale=0.02), token=TOKEN
    ) as s:
        yield s


def write_inventory(path: Path, entries: list[dict[str, object]]) -> None:
    path.write_text(yaml.safe_dump({"appliances": entries}, sort_keys=False), encoding="utf-8")


def write_config(path: Path, **poll: object) -> None:
    config = {
        "instance": "test",
        "inventory": "inventory.yaml",
        "state_dir": "state",
        "appliance_token": {"env": "CDNOPS_TEST_TOKEN"},
        "poll": {"interval_s": 0.5, "timeout_s": 0.4, **poll},
        "http": {"listen": "127.0.0.1", "port": 0},
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")


@pytest.fixture
async def daemon(sim: SimServer, tmp_path: Path) -> AsyncIterator[DaemonProcess]:
    write_inventory(tmp_path / "inventory.yaml", sim.inventory()[:30])
    write_config(tmp_path / "cdnops.yaml")
    proc = DaemonProcess(tmp_path / "cdnops.yaml", env=ENV)
    await proc.start()
    yield proc
    await proc.close()


async def http_port(proc: DaemonProcess) -> int:
    m = await proc.wait_line(r"http listening on http://127\.0\.0\.1:(\d+)")
    return int(m.group(1))


async def scrape(port: int, path: str = "/metrics") -> str:
    async with aiohttp.ClientSession() as s, s.get(f"http://127.0.0.1:{port}{path}") as r:
        assert r.status == 200
        return await r.text()


def appliances_total(metrics_text: str) -> float:
    return sum(
        float(m.group(1))
        for m in re.finditer(r"^cdnops_appliances\{[^}]*\} (\S+)$", metrics_text, re.M)
    )


async def test_sigterm_stops_gracefully_and_saves_state(
    daemon: DaemonProcess, tmp_path: Path
) -> None:
    port = await http_port(daemon)
    await daemon.wait_line(r"tick seq=\d+")
    assert appliances_total(await scrape(port)) == 30
    daemon.send(signal.SIGTERM)
    assert await daemon.wait_exit() == 0
    assert "stopped cleanly" in daemon.output()
    assert (tmp_path / "state" / "detect-state.npz").is_file()


async def test_sighup_reload_adds_and_removes_appliances(
    daemon: DaemonProcess, sim: SimServer, tmp_path: Path
) -> None:
    port = await http_port(daemon)
    await daemon.wait_line(r"tick seq=\d+")
    write_inventory(tmp_path / "inventory.yaml", sim.inventory()[10:40])
    mark = len(daemon.lines)
    daemon.send(signal.SIGHUP)
    await daemon.wait_line(r"reloaded: 30 appliances \(\+10 added, -10 removed\)", after=mark)
    # the next tick after the reload covers the new set
    mark = len(daemon.lines)
    await daemon.wait_line(r"tick seq=\d+", after=mark)
    await daemon.wait_line(r"tick seq=\d+", after=len(daemon.lines))
    text = await scrape(port, "/metrics")
    assert appliances_total(text) == 30
    assert 'cdnops_config_reloads_total{result="ok"} 1.0' in text


async def test_sighup_with_bad_config_keeps_the_running_one(
    daemon: DaemonProcess, tmp_path: Path
) -> None:
    port = await http_port(daemon)
    await daemon.wait_line(r"tick seq=\d+")
    config = tmp_path / "cdnops.yaml"
    config.write_text(config.read_text().replace("interval_s: 0.5", 'interval_s: "5m"'))
    mark = len(daemon.lines)
    daemon.send(signal.SIGHUP)
    await daemon.wait_line(r"reload rejected", after=mark)
    assert re.search(r"cdnops\.yaml:\d+:\d+: poll\.interval_s: ", daemon.output())
    # still polling the old set, still serving
    await daemon.wait_line(r"tick seq=\d+", after=len(daemon.lines))
    assert appliances_total(await scrape(port)) == 30
    assert 'cdnops_config_reloads_total{result="failed"} 1.0' in await scrape(port)


async def test_invalid_config_exits_2_with_file_line(tmp_path: Path) -> None:
    write_inventory(tmp_path / "inventory.yaml", [])
    write_config(tmp_path / "cdnops.yaml", interval_s=-1)
    proc = DaemonProcess(tmp_path / "cdnops.yaml", env=ENV)
    await proc.start()
    try:
        assert await proc.wait_exit() == 2
        assert re.search(r"cdnops\.yaml:\d+:\d+: poll\.interval_s: ", proc.output())
    finally:
        await proc.close()


async def test_token_never_appears_in_output_or_metrics(daemon: DaemonProcess) -> None:
    port = await http_port(daemon)
    await daemon.wait_line(r"tick seq=\d+")
    assert TOKEN not in await scrape(port)
    daemon.send(signal.SIGTERM)
    assert await daemon.wait_exit() == 0
    assert TOKEN not in daemon.output()
