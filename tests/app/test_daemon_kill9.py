"""kill -9 in the middle of a reboot: the restarted daemon sends no second one.

A real `cdnops run` subprocess remediates a hung appliance against the simulator (whose
reboot takes 30 s here); it is SIGKILLed right after the appliance accepted the reboot,
then started again on the same state directory.
"""

from __future__ import annotations

import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml
from daemon_proc import DaemonProcess

from cdnops.sim.server import SimServer, SimSpec
from cdnops.store.db import Store

TOKEN = "kill9-token-not-a-secret"
ENV = {"CDNOPS_KILL9_TOKEN": TOKEN}
PLAYBOOKS = """\
playbooks:
  - name: reboot-hung
    trigger: {kind: unreachable, metric: reachability}
    conditions: [not appliance.reachable]
    steps:
      - action: reboot
        timeout_s: 600
      - action: verify
        params: {condition: appliance.reachable, within_s: 600}
  - name: restart-crashed-nginx
    trigger: {kind: service_failed, metric: "service:nginx"}
    steps:
      - action: restart_service
        params: {service: nginx}
"""


@pytest.fixture
async def sim() -> AsyncIterator[SimServer]:
    spec = SimSpec(appliances=8, sites=2, seed=13, action_delay_scale=0.5)  # reboot: 30 s
    async with SimServer(spec, token=TOKEN) as s:
        yield s


def write_setup(tmp_path: Path, sim: SimServer) -> Path:
    sim.write_inventory(tmp_path / "inventory.yaml")
    (tmp_path / "playbooks").mkdir()
    (tmp_path / "playbooks" / "books.yaml").write_text(PLAYBOOKS, encoding="utf-8")
    config = {
        "instance": "kill9",
        "inventory": "inventory.yaml",
        "state_dir": "state",
        "appliance_token": {"env": "CDNOPS_KILL9_TOKEN"},
        "poll": {"interval_s": 0.2, "timeout_s": 0.15},
        "http": {"port": 0},
        "detect": {"warmup_ticks": 10},
        "incidents": {"group_wait_s": 0.5},
        "remediation": {"cooldown_s": 300.0, "action_poll_interval_s": 0.05},
    }
    path = tmp_path / "cdnops.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def received(sim: SimServer, action: str) -> list[str]:
    return [
        str(r["appliance"])
        for r in sim.truth
        if r["event"] == "action_received" and r["action"] == action
    ]


@pytest.fixture
def daemons() -> list[DaemonProcess]:
    return []


@pytest.fixture(autouse=True)
async def _close_daemons(daemons: list[DaemonProcess]) -> AsyncIterator[None]:
    yield
    for d in daemons:
        await d.close()


async def test_kill9_mid_reboot_neither_repeats_it_nor_loses_state(
    sim: SimServer, tmp_path: Path, daemons: list[DaemonProcess]
) -> None:
    path = write_setup(tmp_path, sim)
    ids = [str(a["id"]) for a in sim.inventory()]
    hung, crashed = ids[1], ids[6]
    db = tmp_path / "state" / "cdnops.db"
    db.parent.mkdir()
    with Store(db) as store:  # an open breaker from an earlier life of the daemon
        open_breaker = {"state": "open", "failures": [time.time()], "opened_ts": time.time()}
        store.set_breaker("restart-crashed-nginx", open_breaker)

    first = DaemonProcess(path, env=ENV)
    daemons.append(first)
    await first.start()
    await first.wait_line(r"tick seq=12 ")
    sim.inject("hung", hung)
    await first.wait_line(rf"remediation action_answer playbook=reboot-hung subject={hung}")
    first.send(signal.SIGKILL)
    assert await first.wait_exit() == -signal.SIGKILL
    with Store(db) as store:
        committed = {(r.ts, r.event, r.execution_id) for r in store.audit()}
        [left] = store.executions()
    assert (left.playbook, left.subject, left.status) == ("reboot-hung", hung, "running")
    assert any(event == "action_answer" for _, event, _ in committed)

    second = DaemonProcess(path, env=ENV)
    daemons.append(second)
    await second.start()
    await second.wait_line(r"remediation execution_interrupted playbook=reboot-hung .*"
                           r"action_sent='yes'")  # fmt: skip
    await second.wait_line(
        rf"remediation skipped playbook=reboot-hung subject={hung} .*guard='cooldown'",
        timeout_s=30,
    )
    sim.inject("service_crash", crashed, service="nginx")
    await second.wait_line(
        rf"remediation skipped playbook=restart-crashed-nginx subject={crashed} .*guard='breaker'",
        timeout_s=30,
    )
    second.send(signal.SIGTERM)
    assert await second.wait_exit() == 0

    assert received(sim, "reboot") == [hung]
    assert received(sim, "restart_service") == []
    with Store(db) as store:
        after = {(r.ts, r.event, r.execution_id) for r in store.audit()}
        [row] = store.executions()
        breaker = store.breakers()["restart-crashed-nginx"]
        cooldowns = store.cooldowns(time.time())
    assert committed <= after
    assert (row.id, row.status) == (left.id, "interrupted")
    assert breaker["state"] == "open"
    assert cooldowns[("reboot-hung", hung)] > time.time() + 200
