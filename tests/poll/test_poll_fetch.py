"""Fetching against real loopback servers: every failure reason, keep-alive, framing, the cap."""

from __future__ import annotations

import asyncio
import dataclasses
import socket

import numpy as np
import pytest
from poll_servers import FakeFleet, free_port

from cdnops.model import Appliance, Inventory, PollFailure
from cdnops.poll.fetch import HealthFetcher
from cdnops.poll.poller import Poller, PollerOptions
from cdnops.poll.wire import endpoint

FAST = PollerOptions(interval_s=1.0, timeout_s=0.5, connect_timeout_s=0.5)


async def one_tick(fleet: FakeFleet, behaviours: dict[str, str], **opts: object) -> list[int]:
    fleet.behaviour.update(behaviours)
    options = dataclasses.replace(FAST, **opts)
    async with Poller(fleet.inventory(list(behaviours)), options, autostart=False) as poller:
        frame = await asyncio.wait_for(poller.tick_once(), 5)
    return [int(x) for x in frame.failure]


@pytest.mark.parametrize(
    ("kind", "failure"),
    [
        ("ok", PollFailure.OK),
        ("chunked", PollFailure.OK),
        ("close", PollFailure.OK),
        ("eof", PollFailure.OK),
        ("hang", PollFailure.TIMEOUT),
        ("reset", PollFailure.CONNECTION),
        ("garbage", PollFailure.CONNECTION),
        ("500", PollFailure.HTTP_STATUS),
        ("big", PollFailure.TOO_LARGE),
        ("big_chunked", PollFailure.TOO_LARGE),
        ("big_eof", PollFailure.TOO_LARGE),
        ("invalid_json", PollFailure.BAD_BODY),
        ("nan", PollFailure.BAD_BODY),
        ("wrong_types", PollFailure.BAD_BODY),
        ("bool_metric", PollFailure.BAD_BODY),
        ("metrics_list", PollFailure.BAD_BODY),
        ("missing_state", PollFailure.BAD_BODY),
        ("wrong_id", PollFailure.BAD_BODY),
        ("bad_state", PollFailure.BAD_BODY),
        ("bad_service", PollFailure.BAD_BODY),
    ],
)
async def test_each_answer_is_classified(fleet: FakeFleet, kind: str, failure: PollFailure) -> None:
    # A healthy neighbour in the same tick: one appliance's failure never affects another.
    assert await one_tick(fleet, {"x": kind, "good": "ok"}) == [failure, PollFailure.OK]


async def test_refused_when_nothing_listens() -> None:
    url = f"http://127.0.0.1:{free_port()}/a/x"
    inv = Inventory((Appliance("x", "s1", url),))
    async with Poller(inv, FAST, autostart=False) as poller:
        frame = await asyncio.wait_for(poller.tick_once(), 5)
    assert frame.failure.tolist() == [PollFailure.REFUSED]


async def test_unpollable_url_is_a_connection_failure() -> None:
    inv = Inventory((Appliance("x", "s1", "ftp://example/a"),))
    async with Poller(inv, FAST, autostart=False) as poller:
        frame = await asyncio.wait_for(poller.tick_once(), 5)
    assert frame.failure.tolist() == [PollFailure.CONNECTION]


async def test_body_cap_is_configurable(fleet: FakeFleet) -> None:
    assert await one_tick(fleet, {"x": "ok"}, max_body_bytes=100) == [PollFailure.TOO_LARGE]
    assert await one_tick(fleet, {"x": "chunked"}, max_body_bytes=100) == [PollFailure.TOO_LARGE]


async def test_hung_appliance_times_out_within_the_deadline(fleet: FakeFleet) -> None:
    fleet.behaviour["x"] = "hang"
    opts = PollerOptions(interval_s=1.0, timeout_s=0.2)
    async with Poller(fleet.inventory(["x"]), opts, autostart=False) as poller:
        loop = asyncio.get_running_loop()
        start = loop.time()
        frame = await asyncio.wait_for(poller.tick_once(), 5)
        took = loop.time() - start
    assert frame.failure.tolist() == [PollFailure.TIMEOUT]
    assert 0.15 <= took < 1.0


async def test_keep_alive_connections_are_reused_across_polls(fleet: FakeFleet) -> None:
    ids = [f"a{i}" for i in range(20)]
    async with Poller(fleet.inventory(ids), FAST, autostart=False) as poller:
        for _ in range(5):
            frame = await asyncio.wait_for(poller.tick_once(), 5)
            assert (frame.failure == 0).all()
        stats = poller.stats
    assert sum(fleet.requests.values()) == 100
    assert fleet.connections <= 20
    assert stats.connections_opened == fleet.connections
    assert stats.connections_reused >= 80


async def test_connection_close_answers_are_not_reused(fleet: FakeFleet) -> None:
    async with Poller(fleet.inventory(["x"]), FAST, autostart=False) as poller:
        fleet.behaviour["x"] = "close"
        for _ in range(3):
            frame = await asyncio.wait_for(poller.tick_once(), 5)
            assert frame.failure.tolist() == [0]
    assert fleet.connections == 3


async def test_stale_kept_alive_connection_is_retried_on_a_fresh_one(fleet: FakeFleet) -> None:
    async with Poller(fleet.inventory(["x"]), FAST, autostart=False) as poller:
        assert (await asyncio.wait_for(poller.tick_once(), 5)).failure.tolist() == [0]
        fleet.drop_idle_connections()
        assert (await asyncio.wait_for(poller.tick_once(), 5)).failure.tolist() == [0]
        assert poller.stats.connections_opened == 2


async def test_fetcher_bounds_connections_per_host(fleet: FakeFleet) -> None:
    fleet.behaviour.update({f"g{i}": "gated" for i in range(6)})
    fetcher = HealthFetcher(timeout_s=5, connect_timeout_s=1, max_body_bytes=65536, max_per_host=2)
    results: asyncio.Queue[int] = asyncio.Queue()
    try:
        for i in range(6):
            fetcher.get(
                endpoint(fleet.url(f"g{i}") + "/health"), lambda f, b, d: results.put_nowait(f)
            )
        await asyncio.wait_for(fleet.arrived.wait(), 5)
        assert fetcher.open_connections <= 2
        fleet.gate.set()
        got = [await asyncio.wait_for(results.get(), 5) for _ in range(6)]
    finally:
        await fetcher.aclose()
    assert got == [0] * 6
    assert fleet.connections == 2
    assert fleet.max_all_in_flight <= 2


async def test_prometheus_format_polls_metrics_endpoint(fleet: FakeFleet) -> None:
    from cdnops.model import HealthFormat

    inv = fleet.inventory(["p"], fmt=HealthFormat.PROMETHEUS)
    async with Poller(inv, FAST, autostart=False) as poller:
        frame = await asyncio.wait_for(poller.tick_once(), 5)
    assert frame.failure.tolist() == [0]
    assert frame.values[0, frame.metrics.index("cpu_util")] == 0.5
    assert frame.uptime_s.tolist() == [100.0]
    assert np.isnan(frame.values[0, frame.metrics.index("egress_gbps")])


async def test_reused_connection_closed_without_answer_is_retried_once(fleet: FakeFleet) -> None:
    async with Poller(fleet.inventory(["x"]), FAST, autostart=False) as poller:
        assert (await asyncio.wait_for(poller.tick_once(), 5)).failure.tolist() == [0]
        fleet.behaviour["x"] = "reset"
        frame = await asyncio.wait_for(poller.tick_once(), 5)
        stats = poller.stats
    assert frame.failure.tolist() == [PollFailure.CONNECTION]
    assert stats.connections_retried == 1
    assert fleet.requests["x"] == 3


async def test_connect_timeout_when_the_listener_never_accepts() -> None:
    # A full accept queue makes the kernel drop further SYNs: the connect hangs.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    try:
        for _ in range(3):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", port))
            fillers.append(s)
        inv = Inventory((Appliance("x", "s1", f"http://127.0.0.1:{port}/a/x"),))
        opts = PollerOptions(interval_s=1.0, timeout_s=2.0, connect_timeout_s=0.2)
        async with Poller(inv, opts, autostart=False) as poller:
            loop = asyncio.get_running_loop()
            start = loop.time()
            frame = await asyncio.wait_for(poller.tick_once(), 5)
            took = loop.time() - start
    finally:
        for s in fillers:
            s.close()
        listener.close()
    assert frame.failure.tolist() == [PollFailure.TIMEOUT]
    assert took < 1.0


async def test_request_waiting_for_a_connection_times_out(fleet: FakeFleet) -> None:
    fleet.behaviour.update({"h1": "hang", "h2": "hang"})
    fetcher = HealthFetcher(timeout_s=0.3, connect_timeout_s=1, max_body_bytes=100, max_per_host=1)
    results: asyncio.Queue[tuple[int, str]] = asyncio.Queue()
    try:
        for aid in ("h1", "h2"):
            ep = endpoint(fleet.url(aid) + "/health")
            fetcher.get(ep, lambda f, b, d: results.put_nowait((f, d)))
        got = [await asyncio.wait_for(results.get(), 3) for _ in range(2)]
    finally:
        await fetcher.aclose()
    assert got == [
        (PollFailure.TIMEOUT, "no complete answer within 0.3s"),
        (PollFailure.TIMEOUT, "no connection free before the deadline"),
    ]
    assert fleet.connections == 1
