"""The whole path in one daemon: a real Alertmanager posts to /api/v1/alerts/alertmanager,
the alert becomes an incident, a `kind: alert` playbook acts on the appliance it names,
and the resolved alert resolves the incident."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from am_process import Alertmanager, binary, config, running

from cdnops.app import Daemon, load_all
from cdnops.sim.server import SimServer, SimSpec

APPLIANCE_TOKEN = "intake-e2e-appliance-token"
WRITE_TOKEN = "intake-e2e-write-token"
MAX_TICKS = 150  # polls every 0.1 s: 15 s at most for each step
# Matched on the alert's name as a copied label: what every version of the playbook checks
# takes (see tests/intake/test_intake_playbooks.py for `metric: <alertname>`).
PLAYBOOK = """\
playbooks:
  - name: edge-down-restart
    trigger: {kind: alert, severity: critical, labels: {alertname: EdgeDown}}
    steps:
      - action: restart_service
        params: {service: nginx}
"""

pytestmark = pytest.mark.skipif(binary() is None, reason="prometheus-alertmanager not installed")


@pytest.fixture
async def sim(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[SimServer]:
    monkeypatch.setenv("CDNOPS_INTAKE_E2E_APPLIANCE", APPLIANCE_TOKEN)
    spec = SimSpec(appliances=6, sites=2, seed=3, action_delay_scale=0.02)
    async with SimServer(spec, token=APPLIANCE_TOKEN) as s:
        yield s


def write_setup(tmp_path: Path, sim: SimServer) -> Path:
    sim.write_inventory(tmp_path / "inventory.yaml")
    (tmp_path / "playbooks").mkdir()
    (tmp_path / "playbooks" / "alerts.yaml").write_text(PLAYBOOK, encoding="utf-8")
    token = tmp_path / "api-token"
    token.write_text(WRITE_TOKEN, encoding="utf-8")
    token.chmod(0o600)
    cfg = {
        "inventory": "inventory.yaml",
        "state_dir": "state",
        "appliance_token": {"env": "CDNOPS_INTAKE_E2E_APPLIANCE"},
        "poll": {"interval_s": 0.1, "timeout_s": 0.08},
        "http": {"port": 0},
        "incidents": {"group_wait_s": 0, "triage": {"enabled": False}},
        "api": {"write_token": {"file": str(token)}},
    }
    path = tmp_path / "cdnops.yaml"
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return path


@pytest.fixture
async def daemon(sim: SimServer, tmp_path: Path) -> AsyncIterator[Daemon]:
    path = write_setup(tmp_path, sim)
    d = Daemon(path, load_all(path))
    task = asyncio.create_task(d.run())
    try:
        await asyncio.wait_for(d.ready.wait(), 10)
        assert d.control.intake is not None
        yield d
    finally:
        d.request_stop()
        assert await asyncio.wait_for(task, 20) == 0


@pytest.fixture
async def am(daemon: Daemon, tmp_path: Path) -> AsyncIterator[Alertmanager]:
    url = f"http://127.0.0.1:{daemon.http_port}/api/v1/alerts/alertmanager"
    async with running(tmp_path / "am", config(url, tmp_path / "api-token")) as manager:
        yield manager


async def until(daemon: Daemon, http: aiohttp.ClientSession, path: str, ok: Any) -> Any:
    """GET /api/v1`path` after each tick until `ok(body)` holds; fails after MAX_TICKS."""
    base = f"http://127.0.0.1:{daemon.http_port}/api/v1"
    body: Any = None
    for _ in range(MAX_TICKS):
        async with http.get(base + path) as resp:
            body = await resp.json()
        if ok(body):
            return body
        await asyncio.wait_for(daemon.wait_ticks(1), 5)
    raise AssertionError(f"GET {path} never satisfied the test after {MAX_TICKS} ticks: {body}")


async def test_an_alert_is_remediated_and_resolved_through_the_daemon(
    sim: SimServer, daemon: Daemon, am: Alertmanager
) -> None:
    target = str(sim.inventory()[0]["id"])
    labels = {"alertname": "EdgeDown", "appliance": target, "severity": "critical"}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
        await am.post_alert(labels, annotations={"summary": f"{target} stopped serving"})

        def alert_incident(body: dict[str, Any]) -> bool:
            return any(i["kind"] == "alert" for i in body["items"])

        body = await until(daemon, http, "/incidents?status=open", alert_incident)
        (inc,) = [i for i in body["items"] if i["kind"] == "alert"]
        assert (inc["scope"], inc["subject"], inc["metric"], inc["severity"]) == (
            "appliance", target, "EdgeDown", "critical"
        )  # fmt: skip
        assert inc["site"] == sim.inventory()[0]["site"]  # from the inventory

        # the playbook restarts nginx on the appliance the alert names
        received = await sim.next_truth(
            lambda r: r["event"] == "action_received" and r["appliance"] == target,
            timeout_s=15,
        )
        assert received["action"] == "restart_service"
        runs = await until(
            daemon, http, "/executions",
            lambda b: any(e["status"] == "succeeded" for e in b["items"]),
        )  # fmt: skip
        (run,) = runs["items"]
        assert (run["playbook"], run["incident_id"], run["subject"]) == (
            "edge-down-restart", inc["id"], target
        )  # fmt: skip

        # Alertmanager resolves it: the incident resolves
        await am.post_alert(labels, resolved=True)
        done = await until(
            daemon, http, f"/incidents/{inc['id']}", lambda b: b["status"] == "resolved"
        )
        assert [e["event"] for e in done["timeline"]][-1] == "resolved"
