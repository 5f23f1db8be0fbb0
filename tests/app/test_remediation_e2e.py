"""Remediation end to end: a daemon with the shipped playbooks against the simulator."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

from cdnops.app import Daemon, load_all
from cdnops.sim.server import SimServer, SimSpec

TOKEN = "remediation-token"
SITES = 3
PER_SITE = 8
SHIPPED = Path(__file__).resolve().parents[2] / "playbooks"
# Durations in the shipped playbooks are for a real fleet polled every 10 s; this fleet is
# polled every 0.2 s and its actions run 50 times faster, so the playbooks' times shrink too.
SCALE = 0.05
SCALED_KEYS = {"within_s", "hold_s", "seconds", "timeout_s", "backoff_s", "cooldown_s"}


def _scaled(node: Any) -> Any:
    if isinstance(node, dict):
        return {
            k: v * SCALE if k in SCALED_KEYS and isinstance(v, int | float) else _scaled(v)
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_scaled(v) for v in node]
    return node


def write_setup(tmp_path: Path, sim: SimServer, **remediation: Any) -> Path:
    """Inventory, scaled copies of the shipped playbooks and a fast config."""
    sim.write_inventory(tmp_path / "inventory.yaml")
    books = tmp_path / "playbooks"
    books.mkdir(exist_ok=True)
    for src in SHIPPED.glob("*.yaml"):
        data = _scaled(yaml.safe_load(src.read_text()))
        (books / src.name).write_text(yaml.safe_dump(data), encoding="utf-8")
    incidents = remediation.pop("incidents", {})
    config = {
        "inventory": "inventory.yaml",
        "state_dir": "state",
        "appliance_token": {"env": "CDNOPS_E2E_TOKEN"},
        "poll": {"interval_s": 0.2, "timeout_s": 0.15},
        "http": {"port": 0},
        "detect": {"warmup_ticks": 10},
        "incidents": {"group_wait_s": 1.0, "grouping_window_s": 5.0, **incidents},
        "remediation": {
            "action_poll_interval_s": 0.05,
            "capacity": {"fleet_max_unavailable_fraction": 0.5},
            **remediation,
        },
    }
    path = tmp_path / "cdnops.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


@pytest.fixture
async def sim(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[SimServer]:
    monkeypatch.setenv("CDNOPS_E2E_TOKEN", TOKEN)
    spec = SimSpec(appliances=SITES * PER_SITE, sites=SITES, seed=11, action_delay_scale=0.02)
    async with SimServer(spec, token=TOKEN) as s:
        yield s


@asynccontextmanager
async def running(path: Path, *, warm: bool = True) -> AsyncIterator[Daemon]:
    d = Daemon(path, load_all(path))
    task = asyncio.create_task(d.run())
    try:
        await asyncio.wait_for(d.ready.wait(), 10)
        if warm:
            await asyncio.wait_for(d.wait_ticks(12), 15)  # past the warm-up
        yield d
    finally:
        d.request_stop()
        assert await asyncio.wait_for(task, 20) == 0


async def until(daemon: Daemon, cond: Callable[[], bool], *, max_ticks: int = 250) -> None:
    """Tick by tick until `cond()` holds; fails after `max_ticks` ticks."""
    for _ in range(max_ticks):
        if cond():
            return
        await asyncio.wait_for(daemon.wait_ticks(1), 5)
    raise AssertionError(f"not reached in {max_ticks} ticks")


def ids(sim: SimServer, site: int) -> list[str]:
    sites = sorted({str(a["site"]) for a in sim.inventory()})
    return [str(a["id"]) for a in sim.inventory() if a["site"] == sites[site]]


def actions(sim: SimServer, answered: int | None = 202) -> list[tuple[str, str]]:
    return [
        (str(r["appliance"]), str(r["action"]))
        for r in sim.truth
        if r["event"] == "action_received" and (answered is None or r["answer_status"] == answered)
    ]


def fixed(sim: SimServer) -> dict[str, str]:
    """Appliance -> kind of each fault fixed on it."""
    out = {}
    for r in sim.truth:
        if r["event"] == "fault_fixed":
            for a in r["appliances"]:  # type: ignore[attr-defined]
                out[str(a)] = str(r["kind"])
    return out


def events(daemon: Daemon, name: str) -> list[Any]:
    return [r for r in daemon.remediator.audit.store.audit() if r.event == name]


async def test_acute_faults_get_the_right_action_and_recover(
    sim: SimServer, tmp_path: Path
) -> None:
    crash, leak = ids(sim, 0)[1], ids(sim, 0)[4]
    hung, corrupt = ids(sim, 1)[2], ids(sim, 2)[3]
    async with running(write_setup(tmp_path, sim)) as d:
        sim.inject("service_crash", crash, service="nginx")
        sim.inject("hung", hung)
        sim.inject("cache_corruption", corrupt)
        sim.inject("memory_leak", leak, tau_s=4.0)
        want = {crash: "service_crash", hung: "hung", corrupt: "cache_corruption",
                leak: "memory_leak"}  # fmt: skip
        await until(d, lambda: fixed(sim) == want)
        await until(d, lambda: not d.remediator.running)
        statuses = {(r.playbook, r.status) for r in d.remediator.audit.store.executions()}
    assert statuses == {
        ("restart-crashed-nginx", "succeeded"),
        ("reboot-hung", "succeeded"),
        ("purge-corrupted-cache", "succeeded"),
        ("memory-leak-ladder", "succeeded"),
    }
    done = actions(sim)
    assert (crash, "restart_service") in done
    assert (hung, "reboot") in done
    assert (corrupt, "purge_cache") in done
    assert (leak, "restart_service") in done
    assert {a for a, _ in done} == set(want), done  # nothing on a healthy appliance
    assert not [a for a in done if a[1] == "reboot" and a[0] != hung]


async def test_hardware_faults_are_drained_within_the_floor_and_escalated(
    sim: SimServer, tmp_path: Path
) -> None:
    hot = ids(sim, 0)[:5]
    disk, nic = ids(sim, 1)[0], ids(sim, 2)[0]
    # many hot appliances at once would be one site incident; here each is its own
    lone = {"site": {"min_share": 1.0, "min_count": 100}}
    path = write_setup(tmp_path, sim, incidents=lone)
    async with running(path) as d:
        for x in hot:
            sim.inject("thermal", x, rise_c=400.0)
        sim.inject("disk_failure", disk, errors_per_s=50.0)
        sim.inject("nic_degradation", nic)
        await until(d, lambda: len(events(d, "escalated")) >= len(hot) + 2, max_ticks=400)
        await until(d, lambda: not d.remediator.running)
        blocked = [e for e in events(d, "guard") if not e.detail["ok"]]
    drains = [a for a, act in actions(sim) if act == "drain"]
    assert sorted(drains) == sorted([*[x for x in hot if x in drains], disk, nic])
    assert len([x for x in drains if x in hot]) == 2  # 25 % of 8: the floor holds
    assert len(blocked) == 3
    assert all(e.detail["guard"] == "capacity" for e in blocked)
    assert not [a for a in actions(sim, None) if a[1] == "reboot"]


async def test_site_outage_is_escalated_once_without_appliance_actions(
    sim: SimServer, tmp_path: Path
) -> None:
    site = str(sim.inventory()[0]["site"])
    async with running(write_setup(tmp_path, sim)) as d:
        sim.inject("site_upstream_outage", site)
        await until(d, lambda: bool(events(d, "escalated")))
        await asyncio.wait_for(d.wait_ticks(15), 10)
        escalations = events(d, "escalated")
    assert [e.playbook for e in escalations] == ["escalate-site-outage"]
    assert actions(sim, None) == []


async def test_recurring_crash_trips_the_breaker(sim: SimServer, tmp_path: Path) -> None:
    target = ids(sim, 1)[5]
    path = write_setup(tmp_path, sim, cooldown_s=0.2, breaker={"failures": 2})
    async with running(path) as d:
        sim.inject("service_crash", target, service="nginx", recur=True, recur_after_s=0.3)
        await until(d, lambda: bool(events(d, "breaker_opened")))
        await asyncio.wait_for(d.wait_ticks(25), 10)
        skipped = [e.detail["guard"] for e in events(d, "skipped")]
        tripped = events(d, "breaker_opened")[0].playbook
        state = {
            s: d.registry.get_sample_value(
                "cdnops_remediation_breaker_state", {"playbook": tripped, "state": s}
            )
            for s in ("closed", "open", "half_open")
        }
    assert actions(sim) == [(target, "restart_service")] * 2
    assert "breaker" in skipped
    assert state == {"closed": 0.0, "open": 1.0, "half_open": 0.0}


async def test_dry_run_executes_nothing_and_records_the_plan(
    sim: SimServer, tmp_path: Path
) -> None:
    target = ids(sim, 2)[6]
    async with running(write_setup(tmp_path, sim, dry_run=True)) as d:
        sim.inject("service_crash", target, service="nginx")
        await until(d, lambda: bool(events(d, "execution_finished")))
        [row] = d.remediator.audit.store.executions()
        plan = [(e.event, e.detail.get("action")) for e in d.remediator.audit.timeline(row.id)]
    assert (row.subject, row.status, row.dry_run) == (target, "succeeded", True)
    assert ("action_not_sent", "restart_service") in plan
    assert actions(sim, None) == []


async def test_restart_mid_cooldown_keeps_the_cooldown(sim: SimServer, tmp_path: Path) -> None:
    target = ids(sim, 0)[6]
    path = write_setup(tmp_path, sim, cooldown_s=120.0)
    async with running(path) as d:
        sim.inject("service_crash", target, service="nginx")
        await until(d, lambda: bool(events(d, "execution_finished")))
    assert actions(sim) == [(target, "restart_service")]
    sim.inject("service_crash", target, service="nginx")
    async with running(path, warm=False) as d:
        await until(
            d, lambda: any(e.detail.get("guard") == "cooldown" for e in events(d, "skipped"))
        )
        await asyncio.wait_for(d.wait_ticks(10), 10)
    assert actions(sim) == [(target, "restart_service")]


async def test_bad_playbook_at_reload_keeps_the_last_good_set(
    sim: SimServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = write_setup(tmp_path, sim)
    async with running(path, warm=False) as d:
        good = d.remediator.playbooks
        assert len(good) == 13
        (tmp_path / "playbooks" / "zz-bad.yaml").write_text(
            "name: bad\ntrigger: {kind: unreachable}\nsteps:\n  - action: rebot\n"
        )
        d.request_reload()
        await until(d, lambda: "reload rejected" in caplog.text, max_ticks=50)
        assert d.remediator.playbooks is good
        assert 'zz-bad.yaml:4:13: steps[0].action: unknown action "rebot"' in caplog.text
        (tmp_path / "playbooks" / "zz-bad.yaml").write_text(
            "name: extra\ntrigger: {kind: unreachable}\nsteps:\n  - action: reboot\n"
        )
        d.request_reload()
        await until(d, lambda: d.remediator.playbooks is not good, max_ticks=50)
        assert "extra" in d.remediator.playbooks.playbooks


async def test_operator_drains_and_undrains_by_hand(sim: SimServer, tmp_path: Path) -> None:
    target = ids(sim, 1)[3]
    async with running(write_setup(tmp_path, sim)) as d:
        drain = d.remediator.run_manual("drain-for-maintenance", target, by="alice")
        await until(d, lambda: not d.remediator.running)
        undrain = d.remediator.run_manual("undrain-after-maintenance", target, by="alice")
        await until(d, lambda: not d.remediator.running)
        rows = {r.id: r for r in d.remediator.audit.store.executions()}
        matched = {e.execution_id: e.detail["by"] for e in events(d, "matched")}
    assert (rows[drain.id].status, rows[undrain.id].status) == ("succeeded", "succeeded")
    assert matched == {drain.id: "alice", undrain.id: "alice"}
    assert actions(sim) == [(target, "drain"), (target, "undrain")]
