"""The simulator speaks the appliance contract: health, metrics, actions and their answers."""

from __future__ import annotations

import time

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sim_helpers import AMS, AUTH, SEA, act, health, run_action, url

from cdnops.model import CONTRACT_METRICS
from cdnops.sim.server import SimServer

STATES = {"serving", "draining", "drained", "maintenance"}
RATIOS = ("cpu_util", "mem_util", "cache_hit_ratio", "http_5xx_ratio", "tcp_retransmit_ratio")


async def test_health_body_has_the_contract_keys_and_types(
    sim: SimServer, client: aiohttp.ClientSession
) -> None:
    async with client.get(url(sim, "sea01-oca-003", "health")) as resp:
        assert resp.status == 200
        assert resp.content_type == "application/json"
        doc = await resp.json()
    assert set(doc) == {"appliance", "site", "ts", "uptime_s", "state", "services", "metrics"}
    assert (doc["appliance"], doc["site"]) == ("sea01-oca-003", "sea01")
    assert abs(doc["ts"] - time.time()) < 5
    assert doc["uptime_s"] > 86400
    assert doc["state"] in STATES
    assert doc["services"] == {"nginx": "running", "cache": "running", "bgp": "established"}
    metrics = doc["metrics"]
    assert list(metrics) == list(CONTRACT_METRICS)
    for name, value in metrics.items():
        assert isinstance(value, int | float), name
        assert not isinstance(value, bool), name
        if name.endswith("_total"):
            assert isinstance(value, int), name
            assert value >= 0, name
    for name in RATIOS:
        assert 0 <= metrics[name] <= 1, name


async def test_healthy_fleet_values_are_plausible(
    sim: SimServer, client: aiohttp.ClientSession
) -> None:
    for appliance in SEA + AMS:
        m = (await health(client, sim, appliance))["metrics"]
        assert 0.9 < m["cache_hit_ratio"] < 1.0
        assert m["http_5xx_ratio"] < 0.01
        assert 20 < m["origin_latency_p99_ms"] < 200
        assert m["tcp_retransmit_ratio"] < 0.01
        assert 30 < m["temperature_c"] < 75
        assert 0 < m["egress_gbps"] < 100
        assert m["active_connections"] > 1000
        assert m["requests_total"] > 10**6


async def test_metrics_endpoint_is_prometheus_text_of_the_same_metrics(
    sim: SimServer, client: aiohttp.ClientSession
) -> None:
    async with client.get(url(sim, "ams02-oca-002", "metrics")) as resp:
        assert resp.status == 200
        assert resp.content_type == "text/plain"
        text = await resp.text()
    samples = {s.name: s.value for fam in text_string_to_metric_families(text) for s in fam.samples}
    assert set(samples) == {f"appliance_{m}" for m in CONTRACT_METRICS}
    assert 0 < samples["appliance_cpu_util"] <= 1
    assert samples["appliance_requests_total"] > 10**6


async def test_unknown_appliance_and_path_are_404(
    sim: SimServer, client: aiohttp.ClientSession
) -> None:
    async with client.get(url(sim, "nope01-oca-001", "health")) as resp:
        assert resp.status == 404
        assert "nope01-oca-001" in (await resp.json())["error"]
    async with client.get(url(sim, "sea01-oca-001", "status")) as resp:
        assert resp.status == 404
    async with client.get(f"{sim.base_url}/") as resp:
        assert resp.status == 404


async def test_actions_need_the_bearer_token(sim: SimServer, client: aiohttp.ClientSession) -> None:
    status, doc = await act(client, sim, "sea01-oca-001", "collect_diagnostics", headers={})
    assert (status, doc) == (401, {"error": "missing or wrong bearer token"})
    wrong = {"Authorization": "Bearer not-the-token"}
    status, _ = await act(client, sim, "sea01-oca-001", "collect_diagnostics", headers=wrong)
    assert status == 401
    answers = [r["answer_status"] for r in sim.truth if r["event"] == "action_received"]
    assert answers == [401, 401]


async def test_unknown_action_and_bad_bodies_are_400(
    sim: SimServer, client: aiohttp.ClientSession
) -> None:
    a = "sea01-oca-002"
    status, doc = await act(client, sim, a, "format_disk")
    assert status == 400
    assert doc["error"].startswith("unknown action 'format_disk'")
    assert (await act(client, sim, a, "purge_cache", body=[1, 2]))[0] == 400
    assert (await act(client, sim, a, "restart_service", body={}))[0] == 400
    assert (await act(client, sim, a, "restart_service", body={"service": "sshd"}))[0] == 400
    async with client.post(url(sim, a, "actions/drain"), data=b"{not json", headers=AUTH) as r:
        assert r.status == 400
        assert (await r.json())["error"].startswith("body is not JSON")


async def test_second_action_while_one_runs_is_409(
    sim: SimServer, client: aiohttp.ClientSession
) -> None:
    a = "sea01-oca-004"
    status, first = await act(client, sim, a, "drain")
    assert status == 202
    assert first["status"] == "accepted"
    status, doc = await act(client, sim, a, "restart_service", {"service": "nginx"})
    assert status == 409
    assert first["action_id"] in doc["error"]
    refused = sim.truth[-1]
    assert (refused["event"], refused["action"], refused["answer_status"]) == (
        "action_received",
        "restart_service",
        409,
    )
    assert refused["action_id"] is None
    assert refused["body"] == {"service": "nginx"}


async def test_action_status_goes_from_running_to_succeeded(
    sim: SimServer, client: aiohttp.ClientSession
) -> None:
    a = "ams02-oca-005"
    status, doc = await act(client, sim, a, "collect_diagnostics")
    assert status == 202
    status_url = url(sim, a, f"actions/{doc['action_id']}")
    async with client.get(status_url) as resp:
        assert await resp.json() == {
            "action_id": doc["action_id"],
            "action": "collect_diagnostics",
            "status": "running",
            "detail": "",
        }
    await sim.next_truth(lambda r: r["event"] == "action_finished")
    async with client.get(status_url) as resp:
        done = await resp.json()
    assert done["status"] == "succeeded"
    assert "diagnostics" in done["detail"]
    async with client.get(url(sim, "ams02-oca-006", f"actions/{doc['action_id']}")) as resp:
        assert resp.status == 404


async def test_collect_diagnostics_does_not_touch_service(
    sim: SimServer, client: aiohttp.ClientSession
) -> None:
    before = await health(client, sim, "sea01-oca-009")
    record = await run_action(client, sim, "sea01-oca-009", "collect_diagnostics")
    after = await health(client, sim, "sea01-oca-009")
    assert record["status"] == "succeeded"
    assert after["state"] == before["state"] == "serving"
    assert after["uptime_s"] >= before["uptime_s"]
    assert after["metrics"]["requests_total"] >= before["metrics"]["requests_total"]


async def test_a_server_is_entered_once(sim: SimServer) -> None:
    with pytest.raises(RuntimeError, match="cannot be entered when running"):
        await sim.__aenter__()
