"""The broker ACL of docs/mqtt.md, on a real mosquitto with users: the daemon can do its
job with it, a dashboard can read events but not command, a wrong password is refused."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import aiomqtt
import orjson
import pytest
from mqtt_broker import Broker, Collector, body, properties
from mqtt_control import ops
from paho.mqtt.packettypes import PacketTypes

from cdnops.config.mqtt import MqttConfig
from cdnops.mqtt.commands import CommandHandler
from cdnops.mqtt.connection import Connection
from cdnops.mqtt.outbox import Outbox
from cdnops.mqtt.publisher import Publisher

DOC = Path(__file__).resolve().parents[2] / "docs" / "mqtt.md"
PREFIX = "cdnops/edge-eu"
USERS = {"cdnops-edge-eu": "daemon-pw", "ops-console": "ops-pw", "dashboard": "dash-pw"}


def documented_acl() -> str:
    """The `conf` block of docs/mqtt.md that holds the ACL."""
    blocks = re.findall(r"```conf\n(.*?)```", DOC.read_text(), flags=re.S)
    (acl,) = [b for b in blocks if "user cdnops-edge-eu" in b]
    return str(acl)


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[Broker]:
    """mosquitto with passwords and the documented ACL, anonymous access refused."""
    folder = tmp_path / "secured"
    folder.mkdir()
    passwords = folder / "passwords"
    for i, (user, password) in enumerate(USERS.items()):
        create = ["-c"] if i == 0 else []
        subprocess.run(
            ["mosquitto_passwd", *create, "-b", str(passwords), user, password],
            check=True,
            capture_output=True,
        )
    acl = folder / "acl"
    acl.write_text(documented_acl())
    broker = Broker(
        folder,
        extra_conf=f"allow_anonymous false\npassword_file {passwords}\nacl_file {acl}\n",
    )
    broker.start()
    yield broker
    broker.stop()


def daemon(outbox: Outbox, port: int, handler: CommandHandler | None = None) -> Publisher:
    """The daemon's publisher, logged in as its own user (password from the environment)."""
    cfg = MqttConfig.model_validate(
        {
            "port": port,
            "username": "cdnops-edge-eu",
            "password": {"env": "CDNOPS_MQTT_PASSWORD"},
            "commands_enabled": True,
        }
    )
    return Publisher(Connection.from_config(cfg, "edge-eu"), outbox, on_message=handler)


async def test_the_documented_acl_lets_the_daemon_work_and_no_more(
    tmp_path: Path, secured: Broker, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CDNOPS_MQTT_PASSWORD", USERS["cdnops-edge-eu"])
    port = secured.port
    async with (
        Collector(port, f"{PREFIX}/incidents/#", identifier="dash",
                  username="dashboard", password=USERS["dashboard"]) as dash,
        Collector(port, f"{PREFIX}/commands/+/result", identifier="ops",
                  username="ops-console", password=USERS["ops-console"]) as answers,
        ops(tmp_path, instance="edge-eu") as o,
    ):  # fmt: skip
        handler = CommandHandler(o.control, o.rig.outbox.topics)
        async with daemon(o.rig.outbox, port, handler) as pub:
            await pub.connected.wait()
            # the incident opened by `ops` reaches the dashboard
            got = await dash.wait_for(lambda ms: len(ms) >= 1)
            assert body(got[0])["data"]["id"] == o.incident_id  # type: ignore[index]
            # a dashboard's command is refused by the broker, an operator's is carried out
            ack = orjson.dumps({"incident_id": o.incident_id, "by": "intruder"})
            async with aiomqtt.Client(
                "127.0.0.1", port, identifier="dash-cmd", username="dashboard",
                password=USERS["dashboard"], protocol=aiomqtt.ProtocolVersion.V5,
            ) as intruder:  # fmt: skip
                await intruder.publish(f"{PREFIX}/commands/ack", ack, qos=1)
            props = properties(PacketTypes.PUBLISH, CorrelationData=b"ops-1")
            async with aiomqtt.Client(
                "127.0.0.1", port, identifier="ops-cmd", username="ops-console",
                password=USERS["ops-console"], protocol=aiomqtt.ProtocolVersion.V5,
            ) as console:  # fmt: skip
                ack = orjson.dumps({"incident_id": o.incident_id, "by": "ana"})
                await console.publish(f"{PREFIX}/commands/ack", ack, qos=1, properties=props)
            # the intruder's command, had it gone through, would have been answered first
            replies = await answers.wait_for(lambda ms: len(ms) >= 1)
            assert [body(m)["correlation"] for m in replies] == ["ops-1"]
            assert body(replies[0])["result"]["by"] == "ana"  # type: ignore[index]
            timeline = [e.detail for e in o.tracker.timeline(o.incident_id)]
            assert not any("intruder" in d for d in timeline)
            await o.rig.outbox.empty.wait()


async def test_a_wrong_password_is_refused_and_events_wait(
    tmp_path: Path, secured: Broker, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CDNOPS_MQTT_PASSWORD", "not-the-password")
    async with ops(tmp_path, instance="edge-eu") as o:
        async with daemon(o.rig.outbox, secured.port) as pub:
            await pub.failed.wait()
            assert not pub.connected.is_set()
        assert o.rig.store.outbox_len() >= 1
