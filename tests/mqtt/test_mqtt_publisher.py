"""The publisher against a real mosquitto: order, schema, status, outages and restarts."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import aiomqtt
from mqtt_broker import Broker, Collector, body
from mqtt_events import PREFIX, rig

EVENTS = f"{PREFIX}/incidents/#"


def seqs(messages: list[aiomqtt.Message]) -> list[int]:
    """The `seq` of each event message, in arrival order."""
    return [int(body(m)["seq"]) for m in messages if "/incidents/" in str(m.topic)]  # type: ignore[call-overload]


def at_least(n: int) -> Callable[[list[aiomqtt.Message]], bool]:
    """A predicate: n distinct events have arrived."""
    return lambda ms: len(set(seqs(ms))) >= n


async def test_events_arrive_in_order_with_their_schema(tmp_path: Path, broker: Broker) -> None:
    r = rig(tmp_path)
    async with Collector(broker.port, f"{PREFIX}/#") as sub:
        async with r.publisher(broker.port) as pub:
            for n in range(30):
                r.opened(n)
            r.execution(1)
            await sub.wait_for(lambda ms: len(seqs(ms)) == 30 and len(sub.on("/sea01-a001")) == 2)
            assert seqs(sub.messages) == list(range(1, 31))
            first = body(sub.on("/incidents/sea01/sea01-a000")[0])
            assert (first["v"], first["seq"], first["type"], first["event"]) == (
                1,
                1,
                "incident",
                "opened",
            )
            execution = body(sub.on("/executions/restart/sea01-a001")[0])
            assert execution["event"] == "started"
            assert body(sub.on("/audit/restart")[0])["event"] == "execution_started"
            online = sub.on("/status")
            assert body(online[0])["state"] == "online"
            await r.outbox.empty.wait()
            assert r.store.outbox_len() == 0
            assert r.value("cdnops_mqtt_connected") == 1
            assert r.value("cdnops_mqtt_published_total") == 32
            assert r.value("cdnops_mqtt_outbox_events") == 0
            assert pub.connected.is_set()
        # a clean stop says offline, retained
        await sub.wait_for(lambda ms: body(ms[-1]).get("state") == "offline")
    assert r.value("cdnops_mqtt_connected") == 0
    async with Collector(broker.port, f"{PREFIX}/status", identifier="late") as late:
        retained = await late.wait_for(lambda ms: len(ms) == 1)
        assert retained[0].retain
        assert body(retained[0])["state"] == "offline"


async def test_no_broker_the_daemon_runs_on_and_everything_arrives_later(
    tmp_path: Path, broker: Broker
) -> None:
    r = rig(tmp_path)
    async with Collector(broker.port, EVENTS) as sub:
        broker.stop()  # the collector's session is kept by the broker for when it is back
        async with r.publisher(broker.port) as pub:  # entering does not wait for the broker
            for n in range(20):
                r.opened(n)
            r.outbox.flush()
            assert r.store.outbox_len() == 20
            await pub.failed.wait()
            assert not pub.connected.is_set()
            broker.start()
            await sub.wait_for(lambda ms: sorted(set(seqs(ms))) == list(range(1, 21)))
    assert r.value("cdnops_mqtt_reconnects_total") >= 1
    assert r.store.outbox_len() == 0


async def test_broker_restart_mid_stream_loses_nothing_duplicates_share_ids(
    tmp_path: Path, broker: Broker
) -> None:
    r = rig(tmp_path)
    total = 0
    async with Collector(broker.port, EVENTS) as sub, r.publisher(broker.port) as pub:
        for _ in range(3):  # three outages, events made before, during and after each
            for _ in range(40):
                total += 1
                r.opened(total)
            r.outbox.flush()
            await sub.wait_for(at_least(total - 30))  # mid-stream: events still on the way
            broker.stop()
            for _ in range(25):
                total += 1
                r.opened(total)
            r.outbox.flush()
            broker.start()
            await pub.connected.wait()
        want = list(range(1, total + 1))
        await sub.wait_for(lambda ms: sorted(set(seqs(ms))) == want)
    by_seq: dict[int, set[bytes]] = defaultdict(set)
    ids: dict[int, set[str]] = defaultdict(set)
    for m in sub.messages:
        assert isinstance(m.payload, bytes)
        b = body(m)
        by_seq[int(b["seq"])].add(m.payload)  # type: ignore[call-overload]
        ids[int(b["seq"])].add(str(b["event_id"]))  # type: ignore[call-overload]
    assert all(len(v) == 1 for v in by_seq.values())  # a duplicate is the very same message
    assert len({next(iter(v)) for v in ids.values()}) == total  # ids tell events apart
    first_arrivals = list(dict.fromkeys(seqs(sub.messages)))
    assert first_arrivals == want  # in order, whatever was re-sent
    assert r.value("cdnops_mqtt_reconnects_total") >= 3
    assert r.value("cdnops_mqtt_dropped_total") == 0


async def test_an_outage_past_the_bound_drops_the_oldest_and_counts_them(
    tmp_path: Path, broker: Broker
) -> None:
    r = rig(tmp_path, max_events=15)
    async with Collector(broker.port, f"{PREFIX}/#") as sub:
        broker.stop()
        async with r.publisher(broker.port):
            for n in range(40):
                r.opened(n)
            r.outbox.flush()
            broker.start()
            await sub.wait_for(lambda ms: sorted(set(seqs(ms))) == list(range(26, 41)))
            await sub.wait_for(lambda ms: any(body(m).get("state") == "online" for m in ms))
            status = body(sub.on("/status")[-1])
    assert r.value("cdnops_mqtt_dropped_total") == 25
    assert status["dropped_total"] == 25
