"""Incidents from a real daemon polling the simulator: one incident per problem."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from cdnops.app import Daemon, load_all
from cdnops.incidents.model import Incident, Scope
from cdnops.sim.server import SimServer, SimSpec

TOKEN = "incidents-token"
SITES = 3
PER_SITE = 8


@pytest.fixture
async def sim() -> AsyncIterator[SimServer]:
    spec = SimSpec(appliances=SITES * PER_SITE, sites=SITES, seed=7, action_delay_scale=0.02)
    async with SimServer(spec, token=TOKEN) as s:
        yield s


def write_config(tmp_path: Path, sim: SimServer) -> Path:
    sim.write_inventory(tmp_path / "inventory.yaml")
    config = {
        "inventory": "inventory.yaml",
        "state_dir": "state",
        "appliance_token": {"env": "CDNOPS_E2E_TOKEN"},
        "poll": {"interval_s": 0.2, "timeout_s": 0.15},
        "http": {"port": 0},
        "detect": {"warmup_ticks": 10},
        "incidents": {"group_wait_s": 1.0, "grouping_window_s": 5.0},
        # incidents alone: no playbook may fix the faults these tests watch
        "remediation": {"enabled": False},
    }
    path = tmp_path / "cdnops.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


@pytest.fixture
async def daemon(
    sim: SimServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Daemon]:
    monkeypatch.setenv("CDNOPS_E2E_TOKEN", TOKEN)
    path = write_config(tmp_path, sim)
    d = Daemon(path, load_all(path))
    task = asyncio.create_task(d.run())
    await asyncio.wait_for(d.ready.wait(), 10)
    await asyncio.wait_for(d.wait_ticks(12), 15)  # past the warm-up
    yield d
    d.request_stop()
    assert await asyncio.wait_for(task, 15) == 0


async def wait_until(
    daemon: Daemon, cond: Callable[[list[Incident]], bool], *, max_ticks: int = 100
) -> list[Incident]:
    """Tick by tick until `cond(open incidents)` holds; fails after `max_ticks` ticks."""
    for _ in range(max_ticks):
        incidents = daemon.tracker.open_incidents()
        if cond(incidents):
            return incidents
        await asyncio.wait_for(daemon.wait_ticks(1), 5)
    raise AssertionError(f"not reached in {max_ticks} ticks: {daemon.tracker.open_incidents()}")


def site_ids(sim: SimServer, site: str) -> set[str]:
    return {str(a["id"]) for a in sim.inventory() if a["site"] == site}


async def test_site_outage_is_one_site_incident_and_inhibits_the_rest(
    daemon: Daemon, sim: SimServer
) -> None:
    site = str(sim.inventory()[0]["site"])
    sim.inject("site_upstream_outage", site)
    incidents = await wait_until(
        daemon, lambda inc: any(i.scope is Scope.SITE and i.subject == site for i in inc)
    )
    site_incidents = [i for i in incidents if i.scope is Scope.SITE]
    assert {i.subject for i in site_incidents} == {site}
    # a few more ticks: per-appliance incidents of the site stay inhibited, none released
    await asyncio.wait_for(daemon.wait_ticks(10), 10)
    ids = site_ids(sim, site)
    appliance_incidents = [
        i
        for i in daemon.tracker.open_incidents()
        if i.scope is Scope.APPLIANCE and i.subject in ids
    ]
    assert all(i.parent is not None for i in appliance_incidents), appliance_incidents
    assert not [i for i in daemon.tracker.releasable() if i.subject in ids]


async def test_single_appliance_fault_is_exactly_one_incident(
    daemon: Daemon, sim: SimServer
) -> None:
    target = str(sim.inventory()[PER_SITE + 2]["id"])
    sim.inject("cache_corruption", target)
    incidents = await wait_until(daemon, lambda inc: any(i.subject == target for i in inc))
    await asyncio.wait_for(daemon.wait_ticks(10), 10)
    incidents = daemon.tracker.open_incidents()
    assert [i.subject for i in incidents] == [target], incidents
    assert incidents[0].scope is Scope.APPLIANCE


async def test_benign_traffic_surge_opens_no_incident(daemon: Daemon, sim: SimServer) -> None:
    site = str(sim.inventory()[-1]["site"])
    sim.inject("traffic_surge", site)
    await asyncio.wait_for(daemon.wait_ticks(40), 20)
    assert daemon.tracker.open_incidents() == []


async def test_flapping_metric_is_one_incident_with_flaps(daemon: Daemon, sim: SimServer) -> None:
    target = str(sim.inventory()[3]["id"])
    sim.inject("flapping", target, metric="temperature_c", period_s=1.5, value=95.0)
    incidents = await wait_until(
        daemon, lambda inc: any(i.subject == target and i.flaps >= 2 for i in inc), max_ticks=150
    )
    assert [i.subject for i in incidents] == [target]


async def test_restart_keeps_open_incidents_without_duplicates(
    sim: SimServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CDNOPS_E2E_TOKEN", TOKEN)
    path = write_config(tmp_path, sim)
    target = str(sim.inventory()[4]["id"])
    sim.inject("service_crash", target, service="nginx")
    opened: list[str] = []
    for _ in range(2):
        d = Daemon(path, load_all(path))
        task = asyncio.create_task(d.run())
        await asyncio.wait_for(d.ready.wait(), 10)
        incidents = await wait_until(d, lambda inc: any(i.subject == target for i in inc))
        await asyncio.wait_for(d.wait_ticks(5), 10)
        incidents = d.tracker.open_incidents()
        assert [i.subject for i in incidents] == [target]
        opened.append(incidents[0].id)
        d.request_stop()
        assert await asyncio.wait_for(task, 15) == 0
    assert opened[0] == opened[1]


async def test_silence_suppresses_then_expires_on_time(
    sim: SimServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CDNOPS_E2E_TOKEN", TOKEN)
    path = write_config(tmp_path, sim)
    target = str(sim.inventory()[6]["id"])
    now = time.time()
    config = yaml.safe_load(path.read_text())
    config["incidents"]["silences"] = [
        {
            "id": "maint-1",
            "appliance": target,
            "starts_at": _iso(now - 60),
            "ends_at": _iso(now + 6),
            "comment": "planned work",
        }
    ]
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    d = Daemon(path, load_all(path))
    task = asyncio.create_task(d.run())
    try:
        await asyncio.wait_for(d.ready.wait(), 10)
        sim.inject("service_crash", target, service="nginx")
        incidents = await wait_until(d, lambda inc: any(i.subject == target for i in inc))
        assert incidents[0].silenced_by == "maint-1"
        assert d.tracker.releasable() == []
        assert time.time() < now + 6, "the machine was too slow for this test's window"
        released = await wait_until(
            d, lambda _: any(i.subject == target for i in d.tracker.releasable()), max_ticks=100
        )
        assert time.time() >= now + 6
        assert [i.silenced_by for i in released] == [None]
    finally:
        d.request_stop()
        assert await asyncio.wait_for(task, 15) == 0


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()


@pytest.mark.parametrize(
    ("fault", "params", "root_cause"),
    [
        ("disk_failure", {"errors_per_s": 20}, "disk_errors_total"),
    ],
)
async def test_the_root_cause_leads_the_incident(
    daemon: Daemon, sim: SimServer, fault: str, params: dict[str, object], root_cause: str
) -> None:
    target = str(sim.inventory()[PER_SITE * 2 + 1]["id"])
    sim.inject(fault, target, **params)
    incidents = await wait_until(
        daemon, lambda inc: any(i.subject == target and i.triage for i in inc), max_ticks=200
    )
    (incident,) = [i for i in incidents if i.subject == target]
    # the root cause leads: as the incident's trigger, or else as the top triage signal
    first = incident.metric if incident.metric == root_cause else incident.triage[0].metric
    assert first == root_cause, (incident.metric, [s.line for s in incident.triage])
    assert root_cause not in [s.metric for s in incident.triage]  # never ranked twice
