"""/api/v1 in a whole daemon (in-process) against the simulator: wiring, the write token from
the environment, silences that survive a restart, breaker reset, SIGHUP token swap."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from cdnops.app import Daemon, load_all
from cdnops.errors import ConfigError
from cdnops.sim.server import SimServer, SimSpec

APPLIANCE_TOKEN = "api-daemon-appliance-token"
WRITE_TOKEN = "api-daemon-write-token"
PLAYBOOK = """\
playbooks:
  - name: restart-nginx
    trigger: {kind: service_failed, metric: "service:nginx"}
    steps:
      - action: restart_service
        params: {service: nginx}
"""


@pytest.fixture
async def sim(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[SimServer]:
    monkeypatch.setenv("CDNOPS_API_T_APPLIANCE", APPLIANCE_TOKEN)
    monkeypatch.setenv("CDNOPS_API_T_WRITE", WRITE_TOKEN)
    async with SimServer(SimSpec(appliances=12, sites=3, seed=5), token=APPLIANCE_TOKEN) as s:
        yield s


def write_setup(tmp_path: Path, sim: SimServer, **api: Any) -> Path:
    sim.write_inventory(tmp_path / "inventory.yaml")
    (tmp_path / "playbooks").mkdir(exist_ok=True)
    (tmp_path / "playbooks" / "main.yaml").write_text(PLAYBOOK, encoding="utf-8")
    config = {
        "inventory": "inventory.yaml",
        "state_dir": "state",
        "appliance_token": {"env": "CDNOPS_API_T_APPLIANCE"},
        "poll": {"interval_s": 0.2, "timeout_s": 0.15},
        "http": {"port": 0},
        "incidents": {"triage": {"enabled": False}},
        "api": {"write_token": {"env": "CDNOPS_API_T_WRITE"}, **api},
    }
    path = tmp_path / "cdnops.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


@asynccontextmanager
async def running(path: Path) -> AsyncIterator[tuple[Daemon, str, aiohttp.ClientSession]]:
    d = Daemon(path, load_all(path))
    task = asyncio.create_task(d.run())
    try:
        await asyncio.wait_for(d.ready.wait(), 10)
        await asyncio.wait_for(d.wait_ticks(1), 10)
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as http:
            yield d, f"http://127.0.0.1:{d.http_port}/api/v1", http
    finally:
        d.request_stop()
        assert await asyncio.wait_for(task, 20) == 0


def auth(token: str = WRITE_TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_silence_survives_a_restart(sim: SimServer, tmp_path: Path) -> None:
    path = write_setup(tmp_path, sim)
    first = sim.inventory()[0]
    body = {"appliance": first["id"], "duration_s": 3600, "comment": "disk swap", "by": "ana"}
    async with (
        running(path) as (_, base, http),
        http.post(f"{base}/silences", json=body, headers=auth()) as resp,
    ):
        assert resp.status == 201
        made = await resp.json()
    async with running(path) as (d, base, http):
        async with http.get(f"{base}/silences") as resp:
            listed = (await resp.json())["items"]
        assert [(s["id"], s["appliance"], s["created_by"]) for s in listed] == [
            (made["id"], first["id"], "ana")
        ]
        assert d.tracker.silences.get(made["id"]) is not None
        async with http.delete(f"{base}/silences/{made['id']}", headers=auth()) as resp:
            assert resp.status == 200
    async with running(path) as (d, base, http):
        assert d.tracker.silences.all() == []


async def test_appliances_and_breaker_reset_in_the_daemon(sim: SimServer, tmp_path: Path) -> None:
    async with running(write_setup(tmp_path, sim)) as (d, base, http):
        # A poll that straddles a tick boundary shows as `not_polled` in that tick's frame
        # (docs/polling.md): read the page tick by tick until the first five were all polled.
        for _ in range(10):
            await asyncio.wait_for(d.wait_ticks(1), 10)
            async with http.get(f"{base}/appliances", params={"limit": "5"}) as resp:
                assert resp.status == 200
                page = await resp.json()
            if all(a["last_poll"] == "ok" for a in page["items"]):
                break
        assert page["total"] == 12
        assert [a["id"] for a in page["items"]] == [str(a["id"]) for a in sim.inventory()[:5]]
        assert [(a["up"], a["last_poll"]) for a in page["items"]] == [(True, "ok")] * 5
        assert all(a["metrics"] for a in page["items"])

        guards = d.remediator.guards
        for _ in range(d.remediator.config.breaker.failures):
            guards.record_result("restart-nginx", ok=False)
        url = f"{base}/playbooks/restart-nginx/breaker/reset"
        async with http.post(url, json={"by": "ana"}, headers=auth()) as resp:
            assert (resp.status, await resp.json()) == (
                200,
                {"playbook": "restart-nginx", "reset": True, "breaker": "closed"},
            )
        async with http.post(url, headers=auth("not-it")) as resp:
            assert resp.status == 401


async def test_sighup_swaps_the_write_token(
    sim: SimServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = {"site": str(sim.inventory()[0]["site"]), "duration_s": 60, "comment": "c"}
    async with running(write_setup(tmp_path, sim)) as (d, base, http):
        monkeypatch.setenv("CDNOPS_API_T_WRITE", "rotated-token")
        d.request_reload()
        for _ in range(100):  # the reload runs on the loop between ticks
            await asyncio.wait_for(d.wait_ticks(1), 5)
            if d.loaded.write_token is not None and d.loaded.write_token.reveal() != WRITE_TOKEN:
                break
        async with http.post(f"{base}/silences", json=body, headers=auth()) as resp:
            assert resp.status == 401
        async with http.post(f"{base}/silences", json=body, headers=auth("rotated-token")) as r:
            assert r.status == 201


async def test_api_can_be_turned_off(sim: SimServer, tmp_path: Path) -> None:
    async with running(write_setup(tmp_path, sim, enabled=False)) as (_, base, http):
        async with http.get(f"{base}/incidents") as resp:
            assert resp.status == 404
        async with http.get(base.removesuffix("/api/v1") + "/healthz") as resp:
            assert resp.status == 200


def test_an_unset_write_token_variable_fails_at_start(
    sim: SimServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_setup(tmp_path, sim)
    monkeypatch.delenv("CDNOPS_API_T_WRITE")
    with pytest.raises(ConfigError) as exc:
        load_all(path)
    assert str(exc.value) == (
        f"{path}:3:10: api.write_token.env: environment variable CDNOPS_API_T_WRITE is not set"
    )
