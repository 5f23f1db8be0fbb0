"""The outbox without a broker: events from the real buses kept in the store, in order,
bounded, every drop counted."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import pytest
from mqtt_events import PREFIX, rig

from cdnops.incidents.model import Scope
from cdnops.mqtt.outbox import Outbox
from cdnops.mqtt.payloads import wire
from cdnops.mqtt.topics import Topics
from cdnops.store.db import Store


async def test_bus_events_are_kept_in_order_in_one_commit_per_turn(tmp_path: Path) -> None:
    r = rig(tmp_path)
    for n in range(5):
        r.opened(n)
    assert r.store.outbox_len() == 0  # buffered until the loop's next turn
    await asyncio.sleep(0)  # one turn of the loop, the turn the flush was scheduled for
    rows = r.store.outbox_peek(100)
    assert [row.seq for row in rows] == [1, 2, 3, 4, 5]
    assert [row.topic for row in rows] == [
        f"{PREFIX}/incidents/sea01/sea01-a{n:03d}" for n in range(5)
    ]
    assert len(r.outbox) == 5
    assert r.value("cdnops_mqtt_outbox_events") == 5


def test_without_a_loop_events_are_written_at_once(tmp_path: Path) -> None:
    r = rig(tmp_path)
    r.opened(1)
    assert r.store.outbox_len() == 1


def test_payload_schema_of_an_incident_event(tmp_path: Path) -> None:
    r = rig(tmp_path)
    r.opened(7)
    row = r.store.outbox_peek(1)[0]
    msg = orjson.loads(wire(row.seq, row.payload))
    assert list(msg)[:2] == ["v", "seq"]
    assert msg["v"] == 1
    assert msg["seq"] == row.seq
    assert msg["type"] == "incident"
    assert msg["event"] == "opened"
    assert msg["instance"] == "t1"
    assert len(msg["event_id"]) == 36
    data = msg["data"]
    assert data["id"] == "inc-00007"
    assert data["scope"] == "appliance"
    assert data["subject"] == "sea01-a007"
    assert data["status"] == "open"
    assert data["change"] is None
    # a re-send is the same bytes
    assert wire(row.seq, row.payload) == wire(row.seq, r.store.outbox_peek(1)[0].payload)


def test_site_and_fleet_incident_topics(tmp_path: Path) -> None:
    r = rig(tmp_path)
    r.opened(1, scope=Scope.SITE)
    r.opened(2, scope=Scope.FLEET)
    topics = [row.topic for row in r.store.outbox_peek(10)]
    assert topics == [f"{PREFIX}/incidents/sea01/_site", f"{PREFIX}/incidents/_fleet/_fleet"]


def test_an_execution_start_is_an_audit_record_and_an_execution_event(tmp_path: Path) -> None:
    r = rig(tmp_path)
    r.execution(3)
    rows = r.store.outbox_peek(10)
    assert [row.topic for row in rows] == [
        f"{PREFIX}/audit/restart",
        f"{PREFIX}/executions/restart/sea01-a003",
    ]
    audit, execution = (orjson.loads(wire(row.seq, row.payload)) for row in rows)
    assert audit["type"] == "audit"
    assert audit["event"] == "execution_started"
    assert audit["data"]["execution_id"] == "ex-3"
    assert execution["type"] == "execution"
    assert execution["event"] == "started"
    assert execution["data"]["status"] == "running"
    assert execution["data"]["dry_run"] is False
    assert audit["event_id"] != execution["event_id"]
    # the audit's own store row was written too: the outbox is beside it, not instead of it
    assert [a.event for a in r.store.audit("ex-3")] == ["execution_started"]


def test_past_the_bound_the_oldest_are_dropped_and_counted(tmp_path: Path) -> None:
    r = rig(tmp_path, max_events=10)
    for n in range(25):
        r.opened(n)
    assert len(r.outbox) == 10
    assert r.store.outbox_len() == 10
    rows = r.store.outbox_peek(100)
    assert [row.seq for row in rows] == list(range(16, 26))  # the newest ten
    assert r.outbox.dropped_total == 15
    assert r.value("cdnops_mqtt_dropped_total") == 15
    assert r.value("cdnops_mqtt_outbox_events") == 10
    # the count survives a restart; the sequence never goes back
    r.store.outbox_delete([row.seq for row in rows])
    r.store.close()
    store = Store(tmp_path / "state.db")
    again = Outbox(store, Topics(PREFIX), "t1", max_events=10)
    assert again.dropped_total == 15
    assert store.outbox_next_seq() == 26


def test_a_lowered_bound_applies_at_start(tmp_path: Path) -> None:
    r = rig(tmp_path)
    for n in range(8):
        r.opened(n)
    again = Outbox(r.store, Topics(PREFIX), "t1", max_events=3)
    assert len(again) == 3
    assert again.dropped_total == 5


def test_an_ack_of_an_event_trimmed_in_flight_is_not_counted_twice(tmp_path: Path) -> None:
    r = rig(tmp_path, max_events=4)
    for n in range(4):
        r.opened(n)
    in_flight = [row.seq for row in r.outbox.peek(2)]  # 1, 2 handed to the broker
    r.opened(4)
    r.opened(5)  # 1 and 2 dropped meanwhile
    assert len(r.outbox) == 4
    r.outbox.ack(in_flight)
    assert len(r.outbox) == 4 == r.store.outbox_len()


def test_an_unwritable_store_loses_events_counted_never_raises(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    r = rig(tmp_path)
    r.store.close()
    r.opened(1)  # the bus calls the outbox; nothing may escape to the tracker
    assert r.value("cdnops_mqtt_dropped_total") == 1
    assert "mqtt outbox: 1 events lost" in caplog.text


async def test_close_unsubscribes_and_writes_the_buffer(tmp_path: Path) -> None:
    r = rig(tmp_path)
    r.opened(1)
    r.outbox.close()
    assert r.store.outbox_len() == 1
    r.opened(2)
    await asyncio.sleep(0)
    assert r.store.outbox_len() == 1
