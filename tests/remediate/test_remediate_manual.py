"""Manual runs: what an operator may start by hand, the refusals they read, and the audit."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from remediate_helpers import (
    TOKEN,
    Frames,
    actions,
    config,
    incident,
    inventory_of,
    playbooks,
    remediator,
    site_ids,
)

from cdnops.incidents.model import Scope
from cdnops.remediate.engine import ManualTriggerError
from cdnops.sim.server import SimServer, SimSpec

BOOKS = """\
playbooks:
  - name: diagnostics
    trigger: {manual: true}
    steps: [{action: collect_diagnostics}]
  - name: reboot-if-down
    trigger: {kind: unreachable}
    conditions: [not appliance.reachable]
    steps: [{action: reboot}]
  - name: retired
    enabled: false
    trigger: {manual: true}
    steps: [{action: collect_diagnostics}]
  - name: site-notice
    trigger: {manual: true, scope: site}
    steps: [{action: notify, params: {message: "work on {{ incident.subject }}"}}]
"""


@pytest.fixture
async def sim() -> AsyncIterator[SimServer]:
    spec = SimSpec(appliances=8, sites=2, seed=7, action_delay_scale=0.01)
    async with SimServer(spec, token=TOKEN) as s:
        yield s


async def test_a_manual_run_is_audited_with_who_asked(sim: SimServer, tmp_path: Path) -> None:
    site, ids = site_ids(sim)
    frames = Frames(inventory_of(sim.inventory()))
    async with remediator(tmp_path / "s.db", playbooks(tmp_path, BOOKS), config()) as (rem, ev):
        assert rem.tick(frames.frame(), [], []) == []  # manual playbooks never match incidents
        ex = rem.run_manual("diagnostics", ids[0], by="alice", reason="ticket OPS-12")
        await rem.wait_idle(5)
        [row] = rem.audit.store.executions()
        timeline = rem.audit.timeline(ex.id)
        site_run = rem.run_manual("site-notice", site, by="bob")
        await rem.wait_idle(5)
    assert (row.id, row.subject, row.status, row.incident_id) == (
        ex.id, ids[0], "succeeded", f"manual:{ids[0]}",
    )  # fmt: skip
    matched = timeline[0]
    assert matched.event == "matched"
    assert matched.detail["by"] == "alice"
    assert matched.detail["request_reason"] == "ticket OPS-12"
    assert matched.detail["trigger"] == "manual"
    assert actions(sim) == [(ids[0], "collect_diagnostics")]
    notified = [e.detail["message"] for e in ev if e.event == "notified"]
    assert (site_run.subject, notified) == (site, [f"work on {site}"])


async def test_refusals_tell_the_operator_why(sim: SimServer, tmp_path: Path) -> None:
    site, ids = site_ids(sim)
    frames = Frames(inventory_of(sim.inventory()))
    async with remediator(tmp_path / "s.db", playbooks(tmp_path, BOOKS), config()) as (rem, ev):

        def refused(playbook: str, subject: str) -> str:
            with pytest.raises(ManualTriggerError) as info:
                rem.run_manual(playbook, subject, by="carol")
            return str(info.value)

        assert refused("diagnostics", ids[0]) == (
            "no poll has completed yet; try again in a few seconds"
        )
        rem.tick(frames.frame(), [], [])
        assert refused("nope", ids[0]) == (
            'unknown playbook "nope" (loaded: diagnostics, reboot-if-down, retired, site-notice)'
        )
        assert refused("retired", ids[0]) == 'playbook "retired" is disabled (enabled: false)'
        assert refused("diagnostics", "zz99-x") == (
            'unknown appliance "zz99-x": it is not in the latest poll'
        )
        assert refused("diagnostics", site) == (
            f'playbook "diagnostics" runs on scope appliance, and "{site}" is a site'
        )
        # an incident playbook may be run by hand, but its conditions still decide
        assert refused("reboot-if-down", ids[1]) == (
            f'playbook "reboot-if-down" on {ids[1]} is blocked by conditions: '
            "not appliance.reachable is false"
        )
        rem.run_manual("diagnostics", ids[2], by="carol")
        assert refused("diagnostics", ids[2]) == (
            f'playbook "diagnostics" on {ids[2]} is blocked by appliance_busy: '
            f"another execution runs on {ids[2]}"
        )
        await rem.wait_idle(5)
        assert refused("diagnostics", ids[2]).startswith(
            f'playbook "diagnostics" on {ids[2]} is blocked by cooldown: cooling down for another'
        )
        outage = incident(site, site, metric="origin_latency_p99_ms", scope=Scope.SITE)
        rem.tick(frames.frame(), [outage], [])
        assert refused("diagnostics", ids[3]) == (
            f'playbook "diagnostics" on {ids[3]} is blocked by inhibition: inhibited by {outage.id}'
        )
    skipped = [(e.detail["guard"], e.detail["by"]) for e in ev if e.event == "skipped"]
    assert skipped == [
        ("conditions", "carol"),
        ("appliance_busy", "carol"),
        ("cooldown", "carol"),
        ("inhibition", "carol"),
    ]
    assert actions(sim) == [(ids[2], "collect_diagnostics")]
