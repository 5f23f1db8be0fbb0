"""The command topic against a real mosquitto and a real Control: answers, errors, replays."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiomqtt
import orjson
import pytest
from mqtt_broker import Broker, Collector, body, prop, properties
from mqtt_control import Ops, ops
from mqtt_events import INSTANCE, PREFIX
from paho.mqtt.packettypes import PacketTypes

from cdnops.config.mqtt import MqttConfig
from cdnops.mqtt.commands import CommandHandler
from cdnops.mqtt.connection import Connection
from cdnops.mqtt.publisher import Publisher


class Operator:
    """An MQTT 5 client sending commands and collecting every answer."""

    def __init__(self, client: aiomqtt.Client, replies: Collector) -> None:
        self.client = client
        self.replies = replies

    async def send(
        self,
        verb: str,
        payload: Any,
        *,
        correlation: bytes | None = None,
        response_topic: str | None = None,
    ) -> dict[str, Any]:
        """Send a command; returns the next answer (on whichever topic it comes)."""
        values: dict[str, object] = {}
        if correlation is not None:
            values["CorrelationData"] = correlation
        if response_topic is not None:
            values["ResponseTopic"] = response_topic
        props = properties(PacketTypes.PUBLISH, **values)
        raw = payload if isinstance(payload, bytes) else orjson.dumps(payload)
        before = len(self.replies.messages)
        await self.client.publish(f"{PREFIX}/commands/{verb}", raw, qos=1, properties=props)
        messages = await self.replies.wait_for(lambda ms: len(ms) > before)
        self.last = messages[before]
        return body(self.last)


@asynccontextmanager
async def operator(tmp_path: Path, broker: Broker) -> AsyncIterator[tuple[Ops, Operator]]:
    """The daemon side (publisher + command handler) and an operator, both connected."""
    async with ops(tmp_path) as o:
        cfg = MqttConfig(port=broker.port, commands_enabled=True)
        handler = CommandHandler(o.control, o.rig.outbox.topics)
        pub = Publisher(
            Connection.from_config(cfg, INSTANCE),
            o.rig.outbox,
            metrics=o.rig.metrics,
            on_message=handler,
        )
        async with (
            Collector(broker.port, f"{PREFIX}/commands/+/result", identifier="replies") as replies,
            pub,
            aiomqtt.Client(
                "127.0.0.1", broker.port, identifier="operator", protocol=aiomqtt.ProtocolVersion.V5
            ) as client,
        ):
            await pub.connected.wait()  # subscribed to the command topic
            await client.subscribe("replies/#", qos=1)
            yield o, Operator(client, replies)


async def test_silence_is_created_and_answered_with_its_correlation(
    tmp_path: Path, broker: Broker
) -> None:
    async with operator(tmp_path, broker) as (o, op):
        answer = await op.send(
            "silence",
            {"site": "sea01", "duration_s": 3600, "comment": "maintenance", "by": "ana"},
            correlation=b"req-1",
        )
        assert str(op.last.topic) == f"{PREFIX}/commands/silence/result"
        assert prop(op.last, "CorrelationData") == b"req-1"
        assert answer["ok"] is True
        assert answer["correlation"] == "req-1"
        silence = answer["result"]["silence"]
        assert (silence["site"], silence["created_by"]) == ("sea01", "ana")
        assert [s.id for s in o.control.silences()] == [silence["id"]]
        assert [b["id"] for b in o.rig.store.silences(0)] == [silence["id"]]
        # QoS 1 may deliver it again: the same correlation is answered, not run twice
        again = await op.send(
            "silence",
            {"site": "sea01", "duration_s": 3600, "comment": "maintenance", "by": "ana"},
            correlation=b"req-1",
        )
        assert again == answer
        assert len(o.control.silences()) == 1


async def test_ack_and_its_errors(tmp_path: Path, broker: Broker) -> None:
    async with operator(tmp_path, broker) as (o, op):
        answer = await op.send(
            "ack", {"incident_id": o.incident_id, "by": "bo", "comment": "on it"}
        )
        assert answer["ok"] is True
        assert answer["result"] == {"incident_id": o.incident_id, "status": "open", "by": "bo"}
        assert any(e.event == "acknowledged" for e in o.tracker.timeline(o.incident_id))
        missing = await op.send("ack", {"incident_id": "inc-nope", "correlation": "c-2"})
        assert missing == {
            "v": 1,
            "ok": False,
            "command": "ack",
            "error": {"kind": "not_found", "message": "no incident inc-nope"},
            "correlation": "c-2",
        }


@pytest.mark.parametrize(
    ("verb", "payload", "message", "problems"),
    [
        ("ack", b"{not json", "the payload is not JSON", None),
        (
            "ack",
            [1, 2],
            "the command is not valid",
            ["a command must be a JSON object, got an array"],
        ),
        ("ack", {"by": "x"}, "the command is not valid", ["incident_id: required"]),
        ("ack", {"incident_id": "i", "rm": 1}, "the command is not valid", ["rm: unknown field"]),
        ("ack", {"command": "run"}, 'command: "run" sent on the "ack" topic', None),
        ("reboot", {}, 'unknown command "reboot" (known: silence, ack, run)', None),
        (
            "silence",
            {"duration_s": 60, "comment": "x"},
            "the command is not valid",
            [
                "body: give at least one matcher (appliance, site, metric, kind or labels): "
                "a silence of everything would hide every incident"
            ],
        ),
    ],
)
async def test_invalid_commands_are_answered_never_crash(
    tmp_path: Path,
    broker: Broker,
    verb: str,
    payload: Any,
    message: str,
    problems: list[str] | None,
) -> None:
    async with operator(tmp_path, broker) as (o, op):
        answer = await op.send(verb, payload)
        assert str(op.last.topic) == f"{PREFIX}/commands/{verb}/result"
        assert answer["ok"] is False
        assert answer["error"]["kind"] == "invalid"
        assert answer["error"]["message"].startswith(message)
        assert answer["error"].get("problems") == problems
        # and the daemon still takes commands
        ok = await op.send("ack", {"incident_id": o.incident_id})
        assert ok["ok"] is True


async def test_manual_run_goes_out_as_execution_events(tmp_path: Path, broker: Broker) -> None:
    async with (
        operator(tmp_path, broker) as (o, op),
        Collector(broker.port, f"{PREFIX}/executions/#", identifier="ex") as executions,
    ):
        answer = await op.send(
            "run", {"playbook": "escalate-hot", "subject": "sea01-a", "by": "cy"}
        )
        assert answer["ok"] is True, answer
        ex_id = answer["result"]["execution_id"]
        await o.remediator.wait_idle(10)
        events = await executions.wait_for(lambda ms: len(ms) >= 2)
        assert [body(m)["event"] for m in events] == ["started", "finished"]
        assert {body(m)["data"]["execution_id"] for m in events} == {ex_id}  # type: ignore[index]
        unknown = await op.send("run", {"playbook": "nope", "subject": "sea01-a"})
        assert unknown["error"] == {"kind": "not_found", "message": "no playbook nope"}


async def test_response_topic_is_honoured_but_never_into_the_event_tree(
    tmp_path: Path, broker: Broker
) -> None:
    async with operator(tmp_path, broker) as (o, op):
        async with Collector(broker.port, "replies/#", identifier="mine") as mine:
            await op.client.publish(
                f"{PREFIX}/commands/ack",
                orjson.dumps({"incident_id": o.incident_id}),
                qos=1,
                properties=properties(PacketTypes.PUBLISH, ResponseTopic="replies/ana"),
            )
            got = await mine.wait_for(lambda ms: len(ms) == 1)
            assert body(got[0])["ok"] is True
        # a requester cannot make the daemon write into its own incident topics
        answer = await op.send(
            "ack", {"incident_id": o.incident_id}, response_topic=f"{PREFIX}/incidents/x/y"
        )
        assert answer["ok"] is True
        assert str(op.last.topic) == f"{PREFIX}/commands/ack/result"
