"""The daemon with an `mqtt:` section against the simulator and a real mosquitto: its
incidents reach the broker and it takes commands; without the section it keeps its events."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiomqtt
import orjson
import pytest
import yaml
from mqtt_broker import Broker, Collector, body

from cdnops.app import Daemon, load_all
from cdnops.sim.server import SimServer, SimSpec

TOKEN = "mqtt-e2e-token"
PREFIX = "cdnops/e2e"


@pytest.fixture
async def sim(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[SimServer]:
    monkeypatch.setenv("CDNOPS_MQTT_E2E_TOKEN", TOKEN)
    spec = SimSpec(appliances=12, sites=2, seed=7, action_delay_scale=0.02)
    async with SimServer(spec, token=TOKEN) as s:
        yield s


def write_config(tmp_path: Path, sim: SimServer, mqtt: dict[str, Any] | None) -> Path:
    sim.write_inventory(tmp_path / "inventory.yaml")
    config: dict[str, Any] = {
        "instance": "e2e",
        "inventory": "inventory.yaml",
        "state_dir": "state",
        "appliance_token": {"env": "CDNOPS_MQTT_E2E_TOKEN"},
        "poll": {"interval_s": 0.2, "timeout_s": 0.15},
        "http": {"port": 0},
        "detect": {"warmup_ticks": 10},
        "incidents": {"group_wait_s": 0.5},
        "remediation": {"enabled": False},
    }
    if mqtt is not None:
        config["mqtt"] = mqtt
    path = tmp_path / "cdnops.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


async def crash_and_wait(d: Daemon, sim: SimServer) -> tuple[str, str]:
    """Crash nginx on one appliance; returns (appliance, site) once its incident is open."""
    entry = sim.inventory()[3]
    target, site = str(entry["id"]), str(entry["site"])
    sim.inject("service_crash", target, service="nginx")
    for _ in range(150):
        if any(i.subject == target for i in d.tracker.open_incidents()):
            return target, site
        await asyncio.wait_for(d.wait_ticks(1), 5)
    raise AssertionError(f"no incident for {target}: {d.tracker.open_incidents()}")


async def test_incidents_reach_the_broker_and_commands_are_taken(
    tmp_path: Path, sim: SimServer, broker: Broker
) -> None:
    path = write_config(tmp_path, sim, {"port": broker.port, "commands_enabled": True})
    async with Collector(broker.port, f"{PREFIX}/#") as sub:
        d = Daemon(path, load_all(path))
        task = asyncio.create_task(d.run())
        await asyncio.wait_for(d.ready.wait(), 10)
        target, site = await crash_and_wait(d, sim)
        topic = f"{PREFIX}/incidents/{site}/{target}"
        got = await sub.wait_for(lambda ms: any(str(m.topic) == topic for m in ms))
        opened = body(next(m for m in got if str(m.topic) == topic))
        assert (opened["type"], opened["event"], opened["instance"]) == (
            "incident",
            "opened",
            "e2e",
        )
        incident_id = opened["data"]["id"]  # type: ignore[index]
        assert body(sub.on("/status")[0])["state"] == "online"
        async with aiomqtt.Client(
            "127.0.0.1", broker.port, identifier="e2e-operator", protocol=aiomqtt.ProtocolVersion.V5
        ) as operator:
            ack = {"incident_id": incident_id, "by": "ana", "comment": "looking"}
            await operator.publish(f"{PREFIX}/commands/ack", orjson.dumps(ack), qos=1)
            answers = await sub.wait_for(lambda ms: bool(sub.on("/commands/ack/result")))
        answer = body(next(m for m in answers if str(m.topic).endswith("/ack/result")))
        assert answer["ok"] is True, answer
        d.request_stop()
        assert await asyncio.wait_for(task, 20) == 0
        await sub.wait_for(lambda ms: body(sub.on("/status")[-1])["state"] == "offline")


async def test_without_a_broker_the_daemon_keeps_its_events(tmp_path: Path, sim: SimServer) -> None:
    path = write_config(tmp_path, sim, None)
    d = Daemon(path, load_all(path))
    task = asyncio.create_task(d.run())
    await asyncio.wait_for(d.ready.wait(), 10)
    target, _ = await crash_and_wait(d, sim)
    await asyncio.wait_for(d.wait_ticks(1), 5)  # the outbox is written on the loop's next turn
    rows = d.control.store.outbox_peek(100)
    assert any(target in row.topic for row in rows)
    d.request_stop()
    assert await asyncio.wait_for(task, 20) == 0
