"""After a crash mid-execution: abandoned, never repeated at once, its audit kept."""

from __future__ import annotations

from pathlib import Path

from remediate_helpers import Clock, Frames, config, incident, playbooks, remediator

from cdnops.model import Appliance, Inventory
from cdnops.remediate.recovery import interrupted_at
from cdnops.store.db import AuditRow, ExecutionRow, Store

REBOOT = """\
name: reboot-hung
trigger: {kind: unreachable}
steps:
  - action: reboot
  - action: verify
    params: {condition: appliance.reachable, within_s: 60}
"""


def audit(*events: tuple[str, dict[str, object]]) -> list[AuditRow]:
    return [AuditRow(float(i), "e1", "reboot-hung", "i1", "a1", e, d) for i, (e, d) in
            enumerate(events)]  # fmt: skip


def test_where_an_interrupted_execution_stood() -> None:
    started = ("step_started", {"step": "reboot", "action": "reboot"})
    answered = ("action_answer", {"action": "reboot", "action_id": "x"})
    done = ("action_done", {"action": "reboot", "status": "succeeded"})
    finished = ("step_finished", {"step": "reboot", "outcome": "ok"})
    verify = ("step_started", {"step": "verify", "action": "verify"})
    assert interrupted_at(audit()) == {"step": "", "action": "", "action_sent": "no"}
    assert interrupted_at(audit(started)) == {
        "step": "reboot", "action": "reboot", "action_sent": "maybe",
    }  # fmt: skip
    assert interrupted_at(audit(started, answered))["action_sent"] == "yes"
    assert interrupted_at(audit(started, answered, done))["action_sent"] == "no"
    assert interrupted_at(audit(started, answered, done, finished, verify)) == {
        "step": "verify", "action": "verify", "action_sent": "no",
    }  # fmt: skip


async def test_a_reboot_in_flight_is_not_sent_again_after_a_restart(tmp_path: Path) -> None:
    inv = Inventory((Appliance("a1", "ams01", "http://127.0.0.1:9"),
                     Appliance("a2", "ams01", "http://127.0.0.1:9")))  # fmt: skip
    frames = Frames(inv)
    db = tmp_path / "s.db"
    with Store(db) as store:
        # what a daemon killed while the appliance rebooted left behind; its cooldown
        # (written when it started, 10 minutes ago) has run out in the meantime
        store.write_remediation(
            [
                ExecutionRow(
                    "e1", "reboot-hung", "i1", "a1", "ams01", "running", False, 400.0, None, ""
                )
            ],
            audit(
                ("execution_started", {}),
                ("step_started", {"step": "reboot", "action": "reboot"}),
                ("action_answer", {"action": "reboot", "action_id": "x"}),
            ),
        )
        store.set_cooldown("reboot-hung", "a1", 460.0)
        before = len(store.audit())
    clock = Clock(1_000.0)
    pbs = playbooks(tmp_path, REBOOT)
    hung = incident("a1", "ams01", metric="reachability")
    async with remediator(db, pbs, config(cooldown_s=60.0), clock) as (rem, ev):
        [row] = rem.audit.store.executions()
        assert (row.status, row.ended_ts) == ("interrupted", 1_000.0)
        [interrupted] = [e for e in ev if e.event == "execution_interrupted"]
        assert interrupted.detail["action_sent"] == "yes"
        assert interrupted.detail["step"] == "reboot"
        assert rem.tick(frames.frame(down=("a1",)), [hung], [hung]) == []
        assert [e.detail["guard"] for e in ev if e.event == "skipped"] == ["cooldown"]
        assert rem.audit.store.cooldowns(clock.now) == {("reboot-hung", "a1"): 1_060.0}
        # the audit written before the crash is all there, the interruption after it
        assert len(rem.audit.store.audit()) == before + 2
