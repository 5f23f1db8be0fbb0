"""`cdnops simulate` as a real subprocess: starts, serves, writes its files, stops on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from pathlib import Path

import aiohttp
import orjson
import yaml
from sim_helpers import AUTH, TOKEN

ROOT = Path(__file__).resolve().parents[2]


async def start(*args: str, env: dict[str, str] | None = None) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cdnops", "simulate", *args,
        cwd=ROOT, env={**os.environ, **(env or {})},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip


async def test_simulate_serves_writes_inventory_and_truth_and_stops_on_sigterm(
    tmp_path: Path, client: aiohttp.ClientSession
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    inventory, truth = tmp_path / "inventory.yaml", tmp_path / "truth.jsonl"
    proc = await start(
        "--appliances", "30", "--sites", "3", "--port", "0", "--action-delay-scale", "0.01",
        "--inventory-out", str(inventory), "--truth-out", str(truth),
        "--token-file", str(token_file),
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode()
        match = re.search(r"30 appliances in 3 sites listening on (http://127\.0\.0\.1:\d+)", line)
        assert match, line
        assert f"inventory written to {inventory}" in line
        entries = yaml.safe_load(inventory.read_text())["appliances"]
        assert len(entries) == 30
        first = entries[0]
        assert first["url"] == f"{match.group(1)}/a/{first['id']}"
        async with client.get(f"{first['url']}/health") as resp:
            assert (await resp.json())["appliance"] == first["id"]
        async with client.post(f"{first['url']}/actions/purge_cache", json={}, headers=AUTH) as r:
            assert r.status == 202
    finally:
        proc.send_signal(signal.SIGTERM)
        rc = await asyncio.wait_for(proc.wait(), 20)
    assert rc == 0
    events = [orjson.loads(x)["event"] for x in truth.read_bytes().splitlines()]
    assert events[0] == "action_received"


async def test_simulate_stops_cleanly_on_sigint(tmp_path: Path) -> None:
    proc = await start("--appliances", "4", "--sites", "1", "--port", "0",
                       env={"CDNOPS_APPLIANCE_TOKEN": TOKEN})  # fmt: skip
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 20)
    assert b"listening on http://127.0.0.1:" in line
    proc.send_signal(signal.SIGINT)
    assert await asyncio.wait_for(proc.wait(), 20) == 0


async def test_simulate_refuses_to_start_without_a_token() -> None:
    proc = await start("--port", "0", "--token-env", "CDNOPS_SIM_TEST_NO_SUCH_VAR")
    _, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 2
    assert err.decode().strip() == (
        "cdnops simulate: no token: set CDNOPS_SIM_TEST_NO_SUCH_VAR or pass --token-file"
    )


async def test_simulate_reports_a_bad_scenario(tmp_path: Path) -> None:
    scenario = tmp_path / "bad.yaml"
    scenario.write_text("faults:\n  - kind: hung\n")
    proc = await start(
        "--port", "0", "--scenario", str(scenario), env={"CDNOPS_APPLIANCE_TOKEN": "x"}
    )
    _, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 2
    assert f"{scenario}:2:5: faults[0].target: must be an appliance id or a site" in err.decode()
