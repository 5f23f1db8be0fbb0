"""Each fault kind shows the effect it claims on health, metrics or the answer itself."""

from __future__ import annotations

import asyncio
import json
import math
import statistics
import time

import aiohttp
import orjson
import pytest
from sim_helpers import AMS, SEA, health, metric, url

from cdnops.sim.server import SimServer


async def site_median(
    client: aiohttp.ClientSession, sim: SimServer, ids: list[str], name: str
) -> float:
    return statistics.median([await metric(client, sim, a, name) for a in ids])


async def test_service_crash_fails_the_service_raises_5xx_and_drops_egress(
    sim: SimServer, client: aiohttp.ClientSession
) -> None:
    a = "sea01-oca-002"
    egress_before = await metric(client, sim, a, "egress_gbps")
    fault_id = sim.inject("service_crash", a, service="nginx")
    doc = await health(client, sim, a)
    assert doc["services"]["nginx"] == "failed"
    assert doc["metrics"]["http_5xx_ratio"] > 0.3
    assert doc["metrics"]["egress_gbps"] < 0.3 * egress_before
    record = sim.truth[-1]
    assert record["event"] == "fault_injected"
    assert (record["fault_id"], record["kind"], record["appliances"]) == (
        fault_id,
        "service_crash",
        [a],
    )


async def test_bgp_crash_withdraws_traffic_to_peers(
    sim: SimServer, client: aiohttp.ClientSession
) -> None:
    sim.inject("service_crash", "sea01-oca-001", service="bgp")
    doc = await health(client, sim, "sea01-oca-001")
    assert doc["services"]["bgp"] == "idle"
    assert doc["metrics"]["egress_gbps"] == 0


async def test_memory_leak_ramps_memory_towards_full(
    sim: SimServer, client: aiohttp.ClientSession
) -> None:
    a = "ams02-oca-003"
    before = await metric(client, sim, a, "mem_util")
    sim.inject("memory_leak", a)
    sim.skip(600)
    mid = await metric(client, sim, a, "mem_util")
    sim.skip(6000)
    late = await health(client, sim, a)
    assert before < 0.75
    assert before < mid < late["metrics"]["mem_util"]
    assert late["metrics"]["mem_util"] > 0.95
    assert late["services"]["nginx"] == "degraded"


async def test_cache_corruption_collapses_hit_ratio_and_raises_latency(
    sim: SimServer, client: aiohttp.ClientSession
) -> None:
    a = "sea01-oca-005"
    latency_before = await metric(client, sim, a, "origin_latency_p99_ms")
    sim.inject("cache_corruption", a)
    m = (await health(client, sim, a))["metrics"]
    assert m["cache_hit_ratio"] <= 0.3
    assert m["origin_latency_p99_ms"] > 1.5 * latency_before
    assert m["http_5xx_ratio"] > 0.01


async def test_disk_failure_climbs_errors_and_degrades_hit_ratio(
    sim: SimServer, client: aiohttp.ClientSession
) -> None:
    a = "ams02-oca-004"
    before = await health(client, sim, a)
    sim.inject("disk_failure", a)
    sim.skip(900)
    after = await health(client, sim, a)
    assert after["metrics"]["disk_errors_total"] - before["metrics"]["disk_errors_total"] > 100
    assert after["metrics"]["cache_hit_ratio"] < before["metrics"]["cache_hit_ratio"] - 0.1
    assert after["services"]["cache"] == "degraded"


async def test_nic_degradation_raises_retransmits_and_errors_and_cuts_egress(
    sim: SimServer, client: aiohttp.ClientSession
) -> None:
    a = "sea01-oca-006"
    before = (await health(client, sim, a))["metrics"]
    sim.inject("nic_degradation", a)
    now = (await health(client, sim, a))["metrics"]
    assert now["tcp_retransmit_ratio"] > 0.05
    assert now["egress_gbps"] < 0.7 * before["egress_gbps"]
    sim.skip(60)
    later = (await health(client, sim, a))["metrics"]
    assert later["nic_errors_total"] - before["nic_errors_total"] > 100


async def test_thermal_climbs_past_85_and_throttles_cpu(
    sim: SimServer, client: aiohttp.ClientSession
) -> None:
    a = "sea01-oca-007"
    before = (await health(client, sim, a))["metrics"]
    sim.inject("thermal", a)
    sim.skip(30)
    warming = await metric(client, sim, a, "temperature_c")
    sim.skip(600)
    hot = (await health(client, sim, a))["metrics"]
    assert before["temperature_c"] < warming < hot["temperature_c"]
    assert hot["temperature_c"] > 85
    sim.skip(1)  # one more step, so throttling sees the high temperature
    throttled = (await health(client, sim, a))["metrics"]
    assert throttled["cpu_util"] > before["cpu_util"] + 0.15


async def test_hung_appliance_never_answers_health_or_metrics(
    sim: SimServer, client: aiohttp.ClientSession
) -> None:
    a = "ams02-oca-001"
    sim.inject("hung", a)
    short = aiohttp.ClientTimeout(total=0.3)
    for path in ("health", "metrics"):
        with pytest.raises(asyncio.TimeoutError):
            async with client.get(url(sim, a, path), timeout=short) as resp:
                await resp.read()
    assert (await health(client, sim, "ams02-oca-002"))["appliance"] == "ams02-oca-002"


async def test_site_upstream_outage_hits_every_appliance_of_the_site_until_it_ends(
    sim: SimServer, client: aiohttp.ClientSession
) -> None:
    sim.inject("site_upstream_outage", "sea01", duration_s=120)
    for a in SEA:
        m = (await health(client, sim, a))["metrics"]
        assert m["origin_latency_p99_ms"] > 1500
        assert m["http_5xx_ratio"] > 0.1
    assert await site_median(client, sim, AMS, "origin_latency_p99_ms") < 200
    record = sim.truth[-1]
    assert record["appliances"] == SEA
    sim.skip(121)
    assert await site_median(client, sim, SEA, "origin_latency_p99_ms") < 200
    cleared = await sim.next_truth(lambda r: r["event"] == "fault_cleared")
    assert cleared["fault_id"] == record["fault_id"]


async def test_traffic_surge_raises_egress_connections_and_cpu_without_errors(
    sim: SimServer, client: aiohttp.ClientSession
) -> None:
    before = {a: (await health(client, sim, a))["metrics"] for a in AMS}
    sim.inject("traffic_surge", "ams02", factor=1.6)
    for a in AMS:
        m = (await health(client, sim, a))["metrics"]
        assert m["egress_gbps"] > 1.4 * before[a]["egress_gbps"]
        assert m["active_connections"] > 1.4 * before[a]["active_connections"]
        assert m["cpu_util"] > before[a]["cpu_util"]
        assert m["http_5xx_ratio"] < 0.01


def test_surge_and_outage_need_a_site_target(sim: SimServer) -> None:
    with pytest.raises(ValueError, match="needs a site"):
        sim.inject("traffic_surge", "sea01-oca-001")
    with pytest.raises(ValueError, match="unknown appliance or site 'lhr03'"):
        sim.inject("thermal", "lhr03")
    with pytest.raises(ValueError, match=r"params\.variant: required"):
        sim.inject("malformed", "sea01-oca-001")


async def test_flapping_metric_alternates_every_period(
    sim: SimServer, client: aiohttp.ClientSession
) -> None:
    a = "sea01-oca-008"
    sim.inject("flapping", a, metric="http_5xx_ratio", period_s=60)
    readings = []
    for _ in range(4):
        readings.append(await metric(client, sim, a, "http_5xx_ratio"))
        sim.skip(60)
    assert [r > 0.1 for r in readings] == [True, False, True, False]


async def test_slow_health_answers_after_the_delay(
    sim: SimServer, client: aiohttp.ClientSession
) -> None:
    a = "sea01-oca-009"
    sim.inject("slow_health", a, delay_s=0.3)
    started = time.monotonic()
    doc = await health(client, sim, a)
    assert time.monotonic() - started >= 0.3
    assert doc["appliance"] == a


@pytest.mark.parametrize("variant", ["invalid_json", "oversized", "wrong_types", "nan"])
async def test_malformed_variants_break_the_body_as_claimed(
    sim: SimServer, client: aiohttp.ClientSession, variant: str
) -> None:
    a = "ams02-oca-009"
    sim.inject("malformed", a, variant=variant)
    async with client.get(url(sim, a, "health")) as resp:
        assert resp.status == 200
        body = await resp.read()
    if variant == "invalid_json":
        with pytest.raises(json.JSONDecodeError):
            json.loads(body)
    elif variant == "oversized":
        assert len(body) > 65536
        assert json.loads(body)["appliance"] == a
    elif variant == "wrong_types":
        metrics = json.loads(body)["metrics"]
        assert all(isinstance(v, str) for v in metrics.values())
    else:
        assert b"NaN" in body
        with pytest.raises(orjson.JSONDecodeError):
            orjson.loads(body)
        assert math.isnan(json.loads(body)["metrics"]["cpu_util"])


async def test_clearing_a_fault_restores_the_appliance(
    sim: SimServer, client: aiohttp.ClientSession
) -> None:
    a = "sea01-oca-010"
    fault_id = sim.inject("service_crash", a, service="cache")
    assert (await health(client, sim, a))["services"]["cache"] == "failed"
    sim.clear(fault_id)
    assert (await health(client, sim, a))["services"]["cache"] == "running"
    assert sim.truth[-1]["event"] == "fault_cleared"
    with pytest.raises(KeyError):
        sim.clear("f9999")
