"""The /_sim/faults control API and the ground-truth log (memory and JSONL)."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import orjson
from sim_helpers import AUTH, TOKEN, health, run_action

from cdnops.sim.faults import FaultSpec
from cdnops.sim.scenario import Scenario
from cdnops.sim.server import SimServer, SimSpec


async def test_control_api_injects_lists_and_deletes_faults(
    sim: SimServer, client: aiohttp.ClientSession
) -> None:
    faults_url = f"{sim.base_url}/_sim/faults"
    fault = {"kind": "service_crash", "target": "ams02-oca-002", "params": {"service": "cache"}}
    async with client.post(faults_url, json=fault, headers=AUTH) as resp:
        assert resp.status == 201
        fault_id = (await resp.json())["fault_id"]
    assert (await health(client, sim, "ams02-oca-002"))["services"]["cache"] == "failed"
    async with client.get(faults_url, headers=AUTH) as resp:
        listed = (await resp.json())["faults"]
    assert [(f["fault_id"], f["status"], f["live"]) for f in listed] == [
        (fault_id, "active", ["ams02-oca-002"])
    ]
    assert listed[0]["params"] == {
        "service": "cache",
        "recur": False,
        "recur_after_s": 30.0,
        "restart_fails": False,
    }
    async with client.delete(f"{faults_url}/{fault_id}", headers=AUTH) as resp:
        assert resp.status == 200
        assert (await resp.json())["status"] == "cleared"
    assert (await health(client, sim, "ams02-oca-002"))["services"]["cache"] == "running"
    async with client.delete(f"{faults_url}/{fault_id}x", headers=AUTH) as resp:
        assert resp.status == 404


async def test_control_api_needs_the_token_and_a_valid_fault(
    sim: SimServer, client: aiohttp.ClientSession
) -> None:
    faults_url = f"{sim.base_url}/_sim/faults"
    async with client.post(faults_url, json={"kind": "hung", "target": "sea01-oca-001"}) as resp:
        assert resp.status == 401
    bad = [
        ({"kind": "meteor", "target": "sea01"}, "kind: must be one of service_crash"),
        ({"kind": "hung", "target": "mars01"}, "target: unknown appliance or site 'mars01'"),
        ({"kind": "thermal", "target": "sea01", "params": {"rise_c": -3}}, "params.rise_c"),
        ({"kind": "hung", "target": "sea01", "duration_s": 0}, "duration_s: must be a number > 0"),
        ({"kind": "hung", "target": "sea01", "when": 3}, "when: unknown field"),
    ]
    for fault, message in bad:
        async with client.post(faults_url, json=fault, headers=AUTH) as resp:
            assert resp.status == 400, fault
            assert message in (await resp.json())["error"]
    async with client.post(faults_url, data=b"[", headers=AUTH) as resp:
        assert resp.status == 400
    assert sim.engine.faults.faults == {}


async def test_truth_jsonl_has_one_record_per_event(
    sim: SimServer, client: aiohttp.ClientSession, tmp_path: Path
) -> None:
    fault_id = sim.inject("service_crash", "sea01-oca-003", service="nginx")
    await run_action(client, sim, "sea01-oca-003", "restart_service", {"service": "nginx"})
    lines = (tmp_path / "truth.jsonl").read_bytes().splitlines()
    records = [orjson.loads(line) for line in lines]
    assert records == sim.truth
    assert [r["event"] for r in records] == [
        "fault_injected",
        "action_received",
        "fault_fixed",
        "action_finished",
    ]
    injected, received, fixed, finished = records
    assert injected["fault_id"] == fixed["fault_id"] == fault_id
    assert injected["params"]["service"] == "nginx"
    assert received["body"] == {"service": "nginx"}
    assert received["answer_status"] == 202
    assert finished["action_id"] == received["action_id"] == fixed["by_action"]
    for r in records:
        assert r["ts"] > 1.7e9
        assert r["sim_ts"] > 1.7e9


async def test_scenario_faults_start_at_their_time(
    tmp_path: Path, client: aiohttp.ClientSession
) -> None:
    scenario = Scenario((FaultSpec("thermal", "sea01-oca-001", at_s=30.0),))
    async with SimServer(SimSpec(appliances=4, sites=1), token=TOKEN, scenario=scenario) as sim:
        assert [f["status"] for f in (sim.engine.fault_dict(f) for f in sim.engine.faults)] == [
            "pending"
        ]
        assert sim.truth == []
        sim.skip(31)
        record = await sim.next_truth(lambda r: r["event"] == "fault_injected")
    assert record["appliances"] == ["sea01-oca-001"]
