"""The remediator against a simulator: executions, safety rails, dry run, audit."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from remediate_helpers import (
    RESTART,
    TOKEN,
    Clock,
    Frames,
    actions,
    config,
    incident,
    inventory_of,
    playbooks,
    remediator,
    tick_until_idle,
)

from cdnops.model import ApplianceState, ServiceStatus
from cdnops.sim.server import SimServer, SimSpec
from cdnops.store.db import ExecutionRow, Store


@pytest.fixture
async def sim() -> AsyncIterator[SimServer]:
    spec = SimSpec(appliances=16, sites=2, seed=3, action_delay_scale=0.01)
    async with SimServer(spec, token=TOKEN) as s:
        yield s


def site_of(sim: SimServer) -> str:
    return str(sim.inventory()[0]["site"])


def ids(sim: SimServer) -> list[str]:
    return [str(a["id"]) for a in sim.inventory() if a["site"] == site_of(sim)]


async def test_restart_runs_and_timeline_reads_back(sim: SimServer, tmp_path: Path) -> None:
    frames = Frames(inventory_of(sim.inventory()))
    target, site = ids(sim)[1], site_of(sim)
    sim.inject("service_crash", target, service="nginx")
    inc = incident(target, site)
    async with remediator(tmp_path / "s.db", playbooks(tmp_path, RESTART), config()) as (rem, ev):
        [ex] = rem.tick(frames.frame(), [inc], [inc])
        await rem.wait_idle(5)
        timeline = [(r.event, r.detail.get("outcome")) for r in rem.audit.timeline(ex.id)]
        assert timeline == [
            ("matched", None),
            ("execution_started", None),
            ("step_started", None),
            ("action_answer", None),
            ("action_done", None),
            ("step_finished", "ok"),
            ("execution_finished", None),
        ]
        assert [e.event for e in ev if e.execution_id == ex.id] == [e for e, _ in timeline]
        [row] = rem.audit.store.executions()
        assert (row.status, row.subject, row.dry_run) == ("succeeded", target, False)
    assert actions(sim) == [(target, "restart_service")]
    fixed = await sim.next_truth(lambda r: r["event"] == "fault_fixed", 2)
    assert fixed["appliances"] == [target]


async def test_one_execution_per_appliance(sim: SimServer, tmp_path: Path) -> None:
    text = RESTART + RESTART.removeprefix("playbooks:\n").replace("restart-nginx", "second")
    frames = Frames(inventory_of(sim.inventory()))
    target, site = ids(sim)[1], site_of(sim)
    inc = incident(target, site)
    async with remediator(tmp_path / "s.db", playbooks(tmp_path, text), config()) as (rem, ev):
        started = rem.tick(frames.frame(), [inc], [inc])
        assert [ex.pb.name for ex in started] == ["restart-nginx"]
        skipped = [e for e in ev if e.event == "skipped"]
        assert [(e.playbook, e.detail["guard"]) for e in skipped] == [("second", "appliance_busy")]
        await rem.wait_idle(5)


async def test_cooldown_survives_a_restart(sim: SimServer, tmp_path: Path) -> None:
    frames = Frames(inventory_of(sim.inventory()))
    target, site = ids(sim)[2], site_of(sim)
    inc = incident(target, site)
    clock = Clock()
    pbs = playbooks(tmp_path, RESTART)
    async with remediator(tmp_path / "s.db", pbs, config(), clock) as (rem, _):
        assert len(rem.tick(frames.frame(), [inc], [inc])) == 1
        await rem.wait_idle(5)
    clock.now += 30  # half of the 60 s cooldown
    async with remediator(tmp_path / "s.db", pbs, config(), clock) as (rem, ev):
        assert rem.tick(frames.frame(), [inc], [inc]) == []
        assert rem.tick(frames.frame(), [inc], [inc]) == []
        skipped = [e.detail for e in ev if e.event == "skipped"]
        assert skipped == [{"guard": "cooldown", "reason": "cooling down for another 30s"}]
        clock.now += 31
        assert len(rem.tick(frames.frame(), [inc], [inc])) == 1
        await rem.wait_idle(5)


async def test_global_concurrency_cap_and_rate_limit(sim: SimServer, tmp_path: Path) -> None:
    frames = Frames(inventory_of(sim.inventory()))
    site = site_of(sim)
    a, b, c = (incident(x, site) for x in ids(sim)[:3])
    pbs = playbooks(tmp_path, RESTART)
    cfg = config(max_concurrent=1, rate_limit_count=2)
    async with remediator(tmp_path / "s.db", pbs, cfg) as (rem, ev):
        assert len(rem.tick(frames.frame(), [a, b], [a, b])) == 1
        guards = [e.detail["guard"] for e in ev if e.event == "skipped"]
        assert guards == ["concurrency"]
        await rem.wait_idle(5)
        assert len(rem.tick(frames.frame(), [b], [b])) == 1
        await rem.wait_idle(5)
        assert rem.tick(frames.frame(), [c], [c]) == []
        assert [e.detail["guard"] for e in ev if e.event == "skipped"][-1] == "rate_limit"


DRAIN = """\
playbooks:
  - name: drain-hot
    trigger: {metric: temperature_c}
    steps:
      - action: drain
      - action: escalate
        params: {reason: "overheating"}
"""


async def test_capacity_fraction_and_floor(sim: SimServer, tmp_path: Path) -> None:
    frames = Frames(inventory_of(sim.inventory()))
    site_ids = ids(sim)  # 8 appliances; 25 % may be unavailable
    site = site_of(sim)
    already = {site_ids[0]: ApplianceState.DRAINED}
    incs = [incident(x, site, metric="temperature_c") for x in site_ids[1:4]]
    cfg = config(capacity={"max_unavailable_fraction": 0.25, "fleet_max_unavailable_fraction": 1})
    async with remediator(tmp_path / "s.db", playbooks(tmp_path, DRAIN), cfg) as (rem, ev):
        started = rem.tick(frames.frame(already), incs, incs)
        assert len(started) == 3
        await rem.wait_idle(5)
        statuses = sorted(r.status for r in rem.audit.store.executions())
        assert statuses == ["blocked", "blocked", "succeeded"]
        blocked = [e.detail for e in ev if e.event == "guard" and not e.detail["ok"]]
        assert blocked[0]["reason"] == (
            f"site {site} would have 3 of 8 appliances unavailable (max 0.25)"
        )
    assert [a for a in actions(sim) if a[1] == "drain"] == [(started[0].subject, "drain")]


async def test_capacity_floor_and_fleet_cap(sim: SimServer, tmp_path: Path) -> None:
    frames = Frames(inventory_of(sim.inventory()))
    site_ids = ids(sim)
    site = site_of(sim)
    down = tuple(site_ids[:5])
    inc = incident(site_ids[5], site, metric="temperature_c")
    cfg = config(capacity={"max_unavailable_fraction": 1, "min_serving": 3,
                           "fleet_max_unavailable_fraction": 1})  # fmt: skip
    async with remediator(tmp_path / "s.db", playbooks(tmp_path, DRAIN), cfg) as (rem, ev):
        rem.tick(frames.frame(down=down), [inc], [inc])
        await rem.wait_idle(5)
        [verdict] = [e.detail for e in ev if e.event == "guard"]
        assert verdict["reason"] == f"site {site} would have 2 serving (floor 3)"
    cfg = config(capacity={"max_unavailable_fraction": 1, "fleet_max_unavailable_fraction": 0.3})
    async with remediator(tmp_path / "t.db", playbooks(tmp_path, DRAIN), cfg) as (rem, ev):
        rem.tick(frames.frame(down=down), [inc], [inc])
        await rem.wait_idle(5)
        [verdict] = [e.detail for e in ev if e.event == "guard"]
        assert verdict["reason"] == "fleet would have 6 of 16 appliances unavailable (max 0.3)"
    assert actions(sim) == []


async def test_dry_run_sends_nothing_and_records_the_plan(sim: SimServer, tmp_path: Path) -> None:
    frames = Frames(inventory_of(sim.inventory()))
    target, site = ids(sim)[1], site_of(sim)
    inc = incident(target, site, metric="temperature_c")
    async with remediator(tmp_path / "s.db", playbooks(tmp_path, DRAIN), config(dry_run=True)) as (
        rem,
        ev,
    ):
        assert len(rem.tick(frames.frame(), [inc], [inc])) == 1
        await rem.wait_idle(5)
        plan = [(e.event, e.detail.get("action")) for e in ev if e.event in (
            "action_not_sent", "escalated")]  # fmt: skip
        assert plan == [("action_not_sent", "drain"), ("escalated", None)]
        [row] = rem.audit.store.executions()
        assert (row.status, row.dry_run) == ("succeeded", True)
    assert actions(sim) == []


async def test_inhibition_and_silence_are_recorded_once(sim: SimServer, tmp_path: Path) -> None:
    frames = Frames(inventory_of(sim.inventory()))
    site = site_of(sim)
    a = incident(ids(sim)[0], site, parent="site-inc")
    b = incident(ids(sim)[1], site, silenced_by="maint-1")
    async with remediator(tmp_path / "s.db", playbooks(tmp_path, RESTART), config()) as (rem, ev):
        for _ in range(3):
            assert rem.tick(frames.frame(), [a, b], []) == []
    assert [(e.subject, e.detail) for e in ev] == [
        (a.subject, {"guard": "inhibition", "reason": "inhibited by site-inc"}),
        (b.subject, {"guard": "silence", "reason": "silenced by maint-1"}),
    ]
    assert actions(sim) == []


FLAKY = """\
playbooks:
  - name: restart-nginx
    trigger: {kind: service_failed}
    steps:
      - action: restart_service
        params: {service: nginx}
        retries: 1
        backoff_s: 0.01
"""


async def test_breaker_opens_half_opens_and_resets(sim: SimServer, tmp_path: Path) -> None:
    frames = Frames(inventory_of(sim.inventory()))
    site_ids = ids(sim)
    site = site_of(sim)
    for x in site_ids[:4]:
        sim.inject("service_crash", x, service="nginx", restart_fails=True)
    incs = [incident(x, site) for x in site_ids[:4]]
    clock = Clock()
    cfg = config(breaker={"failures": 2, "window_s": 600, "cool_off_s": 100})
    async with remediator(tmp_path / "s.db", playbooks(tmp_path, FLAKY), cfg, clock) as (rem, ev):
        for inc in incs[:2]:
            rem.tick(frames.frame(), [inc], [inc])
            await rem.wait_idle(5)
        assert [e.event for e in ev].count("step_retry") == 2
        assert [e.event for e in ev if e.event.startswith("breaker")] == ["breaker_opened"]
        assert rem.tick(frames.frame(), [incs[2]], [incs[2]]) == []
        assert ev[-1].detail["guard"] == "breaker"
        clock.now += 101
        probe = rem.tick(frames.frame(), incs[2:], incs[2:])
        assert len(probe) == 1  # half-open: one probe, the other waits
        assert ev[-1].detail == {
            "guard": "breaker",
            "reason": "half-open: a probe execution is running",
        }
        await rem.wait_idle(5)
        assert rem.guards.breaker_state("restart-nginx") == "open"  # the probe failed
        assert rem.reset_breaker("restart-nginx")
        assert rem.guards.breaker_state("restart-nginx") == "closed"
        assert ev[-1].event == "breaker_reset"


async def test_http_only_to_allow_listed_urls(sim: SimServer, tmp_path: Path) -> None:
    text = """\
    name: hook
    trigger: {kind: service_failed}
    steps:
      - action: http
        params: {url: "http://127.0.0.1:1/hook/{{ incident.subject }}"}
    """
    frames = Frames(inventory_of(sim.inventory()))
    site = site_of(sim)
    inc = incident(ids(sim)[0], site)
    cfg = config(http_allow=[f"{sim.base_url}/"])
    async with remediator(tmp_path / "s.db", playbooks(tmp_path, text), cfg) as (rem, ev):
        rem.tick(frames.frame(), [inc], [inc])
        await rem.wait_idle(5)
    [finished] = [e.detail for e in ev if e.event == "step_finished"]
    assert finished["outcome"] == "blocked"
    assert finished["blocked_by"] == "http_allow"


async def test_verify_escalation_ladder(sim: SimServer, tmp_path: Path) -> None:
    text = """\
    name: ladder
    trigger: {kind: service_failed}
    steps:
      - action: restart_service
        params: {service: nginx}
      - action: verify
        params: {condition: "appliance.services.nginx == 'running'", within_s: 0.3,
                 on_ok: stop, on_fail: continue}
      - action: collect_diagnostics
      - action: escalate
        params: {reason: "nginx does not stay up"}
    """
    frames = Frames(inventory_of(sim.inventory()))
    target, site = ids(sim)[3], site_of(sim)
    failed = {target: {"nginx": ServiceStatus.FAILED}}
    inc = incident(target, site)
    async with remediator(tmp_path / "s.db", playbooks(tmp_path, text), config()) as (rem, ev):
        rem.tick(frames.frame(services=failed), [inc], [inc])
        await tick_until_idle(rem, lambda: frames.frame(services=failed))
        assert [e.detail.get("ok") for e in ev if e.event == "verified"] == [False]
        assert [e.event for e in ev][-4:] == [
            "step_started", "escalated", "step_finished", "execution_finished"
        ]  # fmt: skip
    assert actions(sim) == [(target, "restart_service"), (target, "collect_diagnostics")]


async def test_verify_hold_is_not_broken_by_a_tick_without_an_answer(
    sim: SimServer, tmp_path: Path
) -> None:
    # every third tick has no answer from the appliance (its poll lands in the next tick):
    # counted as "false", no run of good ticks would ever last the 0.5 s hold
    text = """\
    name: hold
    trigger: {kind: service_failed}
    steps:
      - action: verify
        params: {condition: "appliance.services.nginx == 'running'", within_s: 2, hold_s: 0.5}
    """
    frames = Frames(inventory_of(sim.inventory()))
    target, site = ids(sim)[3], site_of(sim)
    inc = incident(target, site)
    pattern = itertools.cycle([(), (), (target,)])
    async with remediator(tmp_path / "s.db", playbooks(tmp_path, text), config()) as (rem, ev):
        rem.tick(frames.frame(), [inc], [inc])
        await tick_until_idle(rem, lambda: frames.frame(not_polled=next(pattern)))
    assert [e.detail.get("ok") for e in ev if e.event == "verified"] == [True]


async def test_shutdown_grace_interrupts_and_records(sim: SimServer, tmp_path: Path) -> None:
    text = """\
    name: slow
    trigger: {kind: service_failed}
    steps:
      - action: wait
        params: {seconds: 30}
    """
    frames = Frames(inventory_of(sim.inventory()))
    inc = incident(ids(sim)[0], site_of(sim))
    async with remediator(tmp_path / "s.db", playbooks(tmp_path, text), config()) as (rem, ev):
        [ex] = rem.tick(frames.frame(), [inc], [inc])
        assert await rem.shutdown(0.05) == (0, 1)
        [row] = rem.audit.store.executions()
        assert (row.id, row.status) == (ex.id, "interrupted")
    assert ev[-1].event == "execution_finished"
    assert ev[-1].detail == {"status": "interrupted", "dry_run": False}


async def test_execution_left_running_by_a_crash_is_marked_interrupted(tmp_path: Path) -> None:
    with Store(tmp_path / "s.db") as store:
        store.write_remediation(
            [
                ExecutionRow(
                    "e1", "p", "i1", "sea01-oca-001", "sea01", "running", False, 5.0, None, ""
                )
            ]
        )
    pbs = playbooks(tmp_path, RESTART)
    async with remediator(tmp_path / "s.db", pbs, config(), Clock(50.0)) as (rem, ev):
        [row] = rem.audit.store.executions()
        assert (row.status, row.ended_ts) == ("interrupted", 50.0)
    assert [(e.event, e.execution_id) for e in ev] == [("execution_interrupted", "e1")]
