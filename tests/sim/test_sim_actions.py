"""Actions have their real effects: what they fix, what they do not, and reboot and drain."""

from __future__ import annotations

import aiohttp
import pytest
from sim_helpers import SEA, TOKEN, act, health, metric, run_action, until, url

from cdnops.sim.server import SimServer, SimSpec


async def test_restart_service_fixes_a_crash(sim: SimServer, client: aiohttp.ClientSession) -> None:
    a = "sea01-oca-001"
    fault_id = sim.inject("service_crash", a, service="nginx")
    record = await run_action(client, sim, a, "restart_service", {"service": "nginx"})
    assert record["status"] == "succeeded"
    assert record["fixed"] == [fault_id]
    doc = await health(client, sim, a)
    assert doc["services"]["nginx"] == "running"
    assert doc["metrics"]["http_5xx_ratio"] < 0.01
    fixed = await sim.next_truth(lambda r: r["event"] == "fault_fixed")
    assert (fixed["fault_id"], fixed["appliances"]) == (fault_id, [a])


async def test_restarting_another_service_does_not_fix_the_crash(
    sim: SimServer, client: aiohttp.ClientSession
) -> None:
    a = "sea01-oca-002"
    sim.inject("service_crash", a, service="cache")
    await run_action(client, sim, a, "restart_service", {"service": "nginx"})
    assert (await health(client, sim, a))["services"]["cache"] == "failed"


async def test_recurring_crash_comes_back_after_a_restart(
    sim: SimServer, client: aiohttp.ClientSession
) -> None:
    a = "sea01-oca-003"
    sim.inject("service_crash", a, service="nginx", recur=True, recur_after_s=20)
    await run_action(client, sim, a, "restart_service", {"service": "nginx"})
    assert (await health(client, sim, a))["services"]["nginx"] == "running"
    sim.skip(21)
    assert (await health(client, sim, a))["services"]["nginx"] == "failed"
    assert any(r["event"] == "fault_recurred" for r in sim.truth)


async def test_restart_that_fails_reports_failed(
    sim: SimServer, client: aiohttp.ClientSession
) -> None:
    a = "sea01-oca-004"
    sim.inject("service_crash", a, service="nginx", restart_fails=True)
    record = await run_action(client, sim, a, "restart_service", {"service": "nginx"})
    assert record["status"] == "failed"
    assert (await health(client, sim, a))["services"]["nginx"] == "failed"


async def test_restart_nginx_fixes_a_memory_leak(
    sim: SimServer, client: aiohttp.ClientSession
) -> None:
    a = "sea01-oca-005"
    sim.inject("memory_leak", a)
    sim.skip(7200)
    assert await metric(client, sim, a, "mem_util") > 0.95
    await run_action(client, sim, a, "restart_service", {"service": "nginx"})
    assert await metric(client, sim, a, "mem_util") < 0.75


async def test_purge_fixes_corruption_and_the_hit_ratio_recovers_over_minutes(
    sim: SimServer, client: aiohttp.ClientSession
) -> None:
    a = "sea01-oca-006"
    sim.inject("cache_corruption", a)
    record = await run_action(client, sim, a, "purge_cache")
    assert record["fixed"]
    just_purged = await metric(client, sim, a, "cache_hit_ratio")
    sim.skip(120)
    two_minutes = await metric(client, sim, a, "cache_hit_ratio")
    sim.skip(900)
    recovered = await metric(client, sim, a, "cache_hit_ratio")
    assert just_purged < 0.35 < two_minutes < 0.9 < recovered


async def test_reboot_makes_the_appliance_unreachable_then_resets_uptime_and_counters(
    client: aiohttp.ClientSession,
) -> None:
    spec = SimSpec(appliances=4, sites=1, action_delay_scale=0.005)  # reboot: 0.3 s
    async with SimServer(spec, token=TOKEN) as sim:
        a = "sea01-oca-001"
        before = await health(client, sim, a)
        status, _ = await act(client, sim, a, "reboot")
        assert status == 202
        with pytest.raises(aiohttp.ClientConnectionError):
            async with client.get(url(sim, a, "health")) as resp:
                await resp.read()
        await sim.next_truth(lambda r: r["event"] == "reboot_finished", timeout_s=5)
        after = await health(client, sim, a)
    assert after["uptime_s"] < 60 < before["uptime_s"]
    assert after["metrics"]["requests_total"] < before["metrics"]["requests_total"]
    assert after["metrics"]["disk_errors_total"] == 0
    events = [r["event"] for r in sim.truth]
    assert events == ["action_received", "reboot_started", "reboot_finished", "action_finished"]


async def test_reboot_fixes_hung_but_not_nic_degradation(
    sim: SimServer, client: aiohttp.ClientSession
) -> None:
    a = "sea01-oca-007"
    sim.inject("hung", a)
    sim.inject("nic_degradation", a)
    await run_action(client, sim, a, "reboot")
    doc = await health(client, sim, a)
    assert doc["metrics"]["tcp_retransmit_ratio"] > 0.05


async def test_drain_moves_traffic_to_site_peers_and_undrain_brings_it_back(
    sim: SimServer, client: aiohttp.ClientSession
) -> None:
    a, peers = SEA[0], SEA[1:]
    before = {p: await metric(client, sim, p, "egress_gbps") for p in peers}
    status, _ = await act(client, sim, a, "drain")
    assert status == 202
    assert (await health(client, sim, a))["state"] == "draining"
    record = await sim.next_truth(lambda r: r["event"] == "action_finished")
    assert record["status"] == "succeeded"
    drained = await health(client, sim, a)
    assert drained["state"] == "drained"
    assert drained["metrics"]["egress_gbps"] == 0
    after = {p: await metric(client, sim, p, "egress_gbps") for p in peers}
    # Nine peers share the tenth's traffic: each gains about 11 %.
    assert sum(after.values()) > 1.06 * sum(before.values())
    assert sum(after[p] > before[p] for p in peers) >= 7
    assert (await act(client, sim, a, "drain"))[0] == 409
    await run_action(client, sim, a, "undrain")
    back = await health(client, sim, a)
    assert back["state"] == "serving"
    assert back["metrics"]["egress_gbps"] > 1


async def test_last_serving_appliance_of_a_site_is_not_drained(
    client: aiohttp.ClientSession,
) -> None:
    async with SimServer(
        SimSpec(appliances=2, sites=1, action_delay_scale=0.001), token=TOKEN
    ) as sim:
        await run_action(client, sim, "sea01-oca-001", "drain")
        status, doc = await act(client, sim, "sea01-oca-002", "drain")
    assert status == 409
    assert "last serving" in doc["error"]


async def test_undrain_of_a_serving_appliance_is_409(
    sim: SimServer, client: aiohttp.ClientSession
) -> None:
    status, doc = await act(client, sim, SEA[2], "undrain")
    assert (status, doc) == (409, {"error": "appliance is already serving"})


async def test_nothing_fixes_a_failing_disk_but_drain_removes_its_traffic(
    sim: SimServer, client: aiohttp.ClientSession
) -> None:
    a = SEA[4]
    sim.inject("disk_failure", a)
    for action, body in [
        ("restart_service", {"service": "cache"}),
        ("purge_cache", {}),
        ("reboot", {}),
    ]:
        record = await run_action(client, sim, a, action, body)
        assert record["fixed"] == []
    start = await metric(client, sim, a, "disk_errors_total")
    sim.skip(300)
    assert await metric(client, sim, a, "disk_errors_total") > start + 50
    await run_action(client, sim, a, "drain")
    assert await metric(client, sim, a, "egress_gbps") == 0
    assert [f["status"] for f in (await faults(client, sim))] == ["active"]


async def test_draining_a_hot_appliance_cools_it(
    sim: SimServer, client: aiohttp.ClientSession
) -> None:
    a = SEA[5]
    sim.inject("thermal", a)
    sim.skip(600)
    hot = await metric(client, sim, a, "temperature_c")
    await run_action(client, sim, a, "drain")
    sim.skip(600)
    assert hot > 85 > 70 > await metric(client, sim, a, "temperature_c")


async def faults(client: aiohttp.ClientSession, sim: SimServer) -> list[dict[str, object]]:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with client.get(f"{sim.base_url}/_sim/faults", headers=headers) as resp:
        assert resp.status == 200
        doc = await resp.json()
    result: list[dict[str, object]] = doc["faults"]
    return result


async def test_drain_ramps_traffic_down_while_draining(client: aiohttp.ClientSession) -> None:
    spec = SimSpec(appliances=4, sites=1, action_delay_scale=0.05)  # drain: 1.5 s
    async with SimServer(spec, token=TOKEN) as sim:
        a = "sea01-oca-002"
        full = await metric(client, sim, a, "egress_gbps")
        await act(client, sim, a, "drain")

        async def partly_drained() -> bool:
            return 0 < await metric(client, sim, a, "egress_gbps") < 0.8 * full

        await until(partly_drained)
        assert (await health(client, sim, a))["state"] == "draining"
