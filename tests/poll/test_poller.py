"""The Poller: frames, rates through resets, in-flight and concurrency bounds, reload, stop."""

from __future__ import annotations

import asyncio
import logging

import numpy as np
import pytest
from poll_servers import FakeFleet

from cdnops.model import ApplianceState, FleetFrame, PollFailure, ServiceStatus
from cdnops.poll.poller import Poller, PollerOptions

FAST = PollerOptions(interval_s=1.0, timeout_s=2.0, connect_timeout_s=0.5)


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Recorder:
    def __init__(self) -> None:
        self.polls: list[tuple[str, PollFailure]] = []
        self.ticks: list[tuple[int, float]] = []
        self.dropped = 0

    def poll_done(self, site: str, failure: PollFailure, duration_s: float) -> None:
        assert duration_s >= 0
        self.polls.append((site, failure))

    def tick_done(self, frame: FleetFrame, lag_s: float) -> None:
        self.ticks.append((frame.seq, lag_s))

    def frames_dropped(self, n: int) -> None:
        self.dropped += n


async def test_tick_once_frame_content(fleet: FakeFleet) -> None:
    clock = Clock(1_800_000_000.0)
    fleet.behaviour["bad"] = "500"
    inv = fleet.inventory(["a", "b", "bad"])
    async with Poller(inv, FAST, clock=clock, autostart=False) as poller:
        first = await asyncio.wait_for(poller.tick_once(), 5)
        clock.now += 10
        second = await asyncio.wait_for(poller.tick_once(), 5)
    m = {name: j for j, name in enumerate(second.metrics)}
    assert (first.seq, second.seq) == (1, 2)
    assert second.ts == 1_800_000_010.0
    assert second.inventory is inv
    assert second.sites == ("s1",)
    assert second.site_index.tolist() == [0, 0, 0]
    assert second.failure.tolist() == [0, 0, PollFailure.HTTP_STATUS]
    assert second.state.tolist() == [ApplianceState.SERVING] * 2 + [ApplianceState.UNKNOWN]
    assert second.uptime_s[:2].tolist() == [100.0, 100.0]
    assert np.isnan(second.uptime_s[2])
    assert second.values[:2, m["cpu_util"]].tolist() == [0.5, 0.5]
    # counters: no rate on the first poll; then 1000 requests per 10 s of appliance time
    assert not first.valid[:, m["requests_total"]].any()
    assert second.values[:2, m["requests_total"]].tolist() == [100.0, 100.0]
    assert second.values[:2, m["disk_errors_total"]].tolist() == [0.0, 0.0]
    assert not second.valid[:, m["egress_gbps"]].any()
    assert not second.valid[2].any()
    assert np.isnan(second.values[~second.valid]).all()
    assert second.services == ("nginx", "cache", "bgp")
    assert second.service_status.tolist() == [[1, 2, 1], [1, 2, 1], [0, 0, 0]]
    assert int(ServiceStatus.DEGRADED) == 2


async def test_counter_reset_gives_no_rate_and_is_counted(fleet: FakeFleet) -> None:
    async with Poller(fleet.inventory(["a", "b"]), FAST, autostart=False) as poller:
        col = poller.options.metrics.index("requests_total")
        await poller.tick_once()
        await poller.tick_once()
        fleet.total["a"] = 0.0  # the appliance restarted: its counter starts again
        after = await poller.tick_once()
        again = await poller.tick_once()
        stats = poller.stats
    assert np.isnan(after.values[0, col])
    assert not after.valid[0, col]
    assert after.values[1, col] == 100.0
    assert again.values[0, col] == 100.0
    assert stats.counter_resets == 1
    assert not (after.values[after.valid] < 0).any()


async def test_one_poll_in_flight_per_appliance(fleet: FakeFleet) -> None:
    fleet.behaviour["slow"] = "gated"
    opts = PollerOptions(interval_s=0.1, timeout_s=5.0)
    async with Poller(fleet.inventory(["slow", "fast"]), opts) as poller:
        frames = [await asyncio.wait_for(poller.frames.get(), 5) for _ in range(4)]
        skipped = poller.stats.skipped_in_flight
        fleet.gate.set()
    assert fleet.max_in_flight["slow"] == 1
    assert fleet.requests["slow"] == 1
    assert skipped >= 2
    assert frames[-1].failure.tolist() == [PollFailure.NOT_POLLED, 0]


async def test_global_concurrency_is_bounded(fleet: FakeFleet) -> None:
    ids = [f"g{i}" for i in range(10)]
    fleet.behaviour.update(dict.fromkeys(ids, "gated"))
    opts = PollerOptions(interval_s=1.0, timeout_s=5.0, concurrency=3)
    async with Poller(fleet.inventory(ids), opts, autostart=False) as poller:
        tick = asyncio.create_task(poller.tick_once())
        await fleet.wait_for(lambda: fleet.all_in_flight == 3)
        fleet.gate.set()
        frame = await asyncio.wait_for(tick, 5)
    assert (frame.failure == 0).all()
    assert fleet.max_all_in_flight == 3


async def test_replace_inventory_keeps_state_of_kept_and_drops_removed(fleet: FakeFleet) -> None:
    async with Poller(fleet.inventory(["a", "b"]), FAST, autostart=False) as poller:
        col = poller.options.metrics.index("requests_total")
        phase_b = poller.phases()["b"]
        await poller.tick_once()
        poller.replace_inventory(fleet.inventory(["c", "b"]))
        frame = await asyncio.wait_for(poller.tick_once(), 5)
        assert poller.phases()["b"] == phase_b
    assert [a.id for a in frame.inventory.appliances] == ["c", "b"]
    assert frame.values[1, col] == 100.0  # b's rate continues without a gap
    assert not frame.valid[0, col]  # c is new: no rate yet
    assert fleet.requests["a"] == 1


async def test_removed_appliance_in_flight_result_is_ignored(fleet: FakeFleet) -> None:
    fleet.behaviour["a"] = "gated"
    async with Poller(fleet.inventory(["a", "b"]), FAST, autostart=False) as poller:
        tick = asyncio.create_task(poller.tick_once())
        await asyncio.wait_for(fleet.arrived.wait(), 5)
        await fleet.wait_for(lambda: fleet.requests["a"] == 1)
        poller.replace_inventory(fleet.inventory(["b"]))
        fleet.gate.set()
        frame = await asyncio.wait_for(tick, 5)
    assert frame.n == 1
    assert frame.failure.tolist() == [0]
    assert frame.values.shape[0] == 1


async def test_cadence_loop_emits_one_frame_per_interval(fleet: FakeFleet) -> None:
    recorder = Recorder()
    ids = [f"a{i}" for i in range(20)]
    opts = PollerOptions(interval_s=0.2, timeout_s=0.5)
    async with Poller(fleet.inventory(ids), opts, observer=recorder) as poller:
        frames = [await asyncio.wait_for(poller.frames.get(), 5) for _ in range(4)]
    assert [f.seq for f in frames] == [1, 2, 3, 4]
    assert all(f.ts == pytest.approx(round(f.ts / 0.2) * 0.2) for f in frames)
    assert np.diff([f.ts for f in frames]) == pytest.approx([0.2] * 3)
    # Full ticks after the first; a poll answering just after a boundary (a loaded machine)
    # counts in the next tick, so allow a few `not_polled` cells but no other failure.
    later = np.array([f.failure for f in frames[1:]])
    assert set(np.unique(later).tolist()) <= {PollFailure.OK, PollFailure.NOT_POLLED}
    assert np.count_nonzero(later == PollFailure.OK) >= later.size - 4
    assert all(lag < 1.0 for _, lag in recorder.ticks)
    assert recorder.ticks[0][0] == 1
    assert ("s1", PollFailure.OK) in recorder.polls
    assert max(fleet.requests.values()) <= 6  # once per interval, not more


async def test_full_queue_drops_the_oldest_frame(fleet: FakeFleet) -> None:
    opts = PollerOptions(interval_s=1.0, frame_queue_size=2)
    recorder = Recorder()
    inventory = fleet.inventory(["a"])
    async with Poller(inventory, opts, observer=recorder, autostart=False) as poller:
        for _ in range(4):
            await poller.tick_once()
        assert poller.stats.frames_dropped == 2
        assert recorder.dropped == 2  # what /metrics counts
        assert [poller.frames.get_nowait().seq for _ in range(2)] == [3, 4]
        assert poller.latest is not None
        assert poller.latest.seq == 4


async def test_logs_first_failure_and_recovery_once(
    fleet: FakeFleet, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="cdnops.poll")
    async with Poller(fleet.inventory(["x"]), FAST, autostart=False) as poller:
        await poller.tick_once()
        fleet.behaviour["x"] = "500"
        for _ in range(3):
            await poller.tick_once()
        fleet.behaviour["x"] = "ok"
        await poller.tick_once()
        await poller.tick_once()
    url = fleet.url("x")
    transitions = [r.getMessage() for r in caplog.records if r.getMessage().startswith("poll ")]
    assert transitions == [
        f"poll failed reason=http_status appliance=x site=s1 url={url} detail=HTTP 500",
        f"poll recovered appliance=x site=s1 url={url}",
    ]
    ticks = [r.getMessage() for r in caplog.records if r.getMessage().startswith("tick ")]
    assert len(ticks) == 6
    assert ticks[1].startswith("tick seq=2 ok=0 failed=1 http_status=1 counter_resets=0 lag_s=")


async def test_stop_waits_for_in_flight_polls_within_grace(fleet: FakeFleet) -> None:
    fleet.behaviour["slow"] = "gated"
    poller = Poller(fleet.inventory(["slow"]), PollerOptions(timeout_s=5.0), autostart=False)
    async with poller:
        tick = asyncio.create_task(poller.tick_once())
        await asyncio.wait_for(fleet.arrived.wait(), 5)
        stopping = asyncio.create_task(poller.stop(grace_s=5.0))
        done, _ = await asyncio.wait([stopping], timeout=0.05)
        assert not done  # stop() waits for the running poll
        assert not poller.running
        fleet.gate.set()
        await asyncio.wait_for(stopping, 2)  # well before the grace: the poll finished
        await asyncio.wait_for(tick, 2)


async def test_stop_cancels_polls_still_running_after_grace(fleet: FakeFleet) -> None:
    fleet.behaviour["hung"] = "hang"
    poller = Poller(fleet.inventory(["hung"]), PollerOptions(timeout_s=30.0), autostart=False)
    async with poller:
        tick = asyncio.create_task(poller.tick_once())
        await asyncio.wait_for(fleet.arrived.wait(), 5)
        loop = asyncio.get_running_loop()
        start = loop.time()
        await asyncio.wait_for(poller.stop(grace_s=0.1), 5)
        assert 0.05 < loop.time() - start < 2.0
        await asyncio.wait_for(tick, 2)  # the cancelled poll still settles tick_once


async def test_misuse_is_a_clear_error(fleet: FakeFleet) -> None:
    poller = Poller(fleet.inventory(["a"]), FAST, autostart=False)
    with pytest.raises(RuntimeError, match="tick_once needs a running Poller"):
        await poller.tick_once()
    async with poller:
        pass
    with pytest.raises(RuntimeError, match="Poller cannot be started: it is stopped"):
        await poller.__aenter__()


def test_invalid_options_are_reported_together() -> None:
    with pytest.raises(ValueError, match="interval_s must be > 0; concurrency must be >= 1"):
        PollerOptions(interval_s=0, concurrency=0)
    with pytest.raises(ValueError, match="retry_delay_s must be >= 0 and below interval_s"):
        PollerOptions(interval_s=1.0, retry_delay_s=1.0)


async def test_stop_settles_polls_still_waiting_for_a_slot(fleet: FakeFleet) -> None:
    ids = [f"g{i}" for i in range(4)]
    fleet.behaviour.update(dict.fromkeys(ids, "gated"))
    opts = PollerOptions(timeout_s=5.0, concurrency=1)
    async with Poller(fleet.inventory(ids), opts, autostart=False) as poller:
        tick = asyncio.create_task(poller.tick_once())
        await fleet.wait_for(lambda: fleet.all_in_flight == 1)
        await asyncio.wait_for(poller.stop(grace_s=0.1), 5)
        frame = await asyncio.wait_for(tick, 2)  # the three that never started do not hang it
    assert sum(fleet.requests.values()) == 1
    assert frame.n == 4


async def test_removed_appliance_waiting_for_a_slot_is_not_polled(fleet: FakeFleet) -> None:
    fleet.behaviour.update(dict.fromkeys(["a", "b", "c"], "gated"))
    opts = PollerOptions(timeout_s=5.0, concurrency=1)
    async with Poller(fleet.inventory(["a", "b", "c"]), opts, autostart=False) as poller:
        order = list(poller.phases())
        tick = asyncio.create_task(poller.tick_once())
        await fleet.wait_for(lambda: fleet.all_in_flight == 1)
        first = next(i for i in order if fleet.requests[i] == 1)
        waiting = [i for i in order if i != first]
        poller.replace_inventory(fleet.inventory([first, waiting[1]]))
        fleet.gate.set()
        frame = await asyncio.wait_for(tick, 5)
    assert fleet.requests[waiting[0]] == 0
    assert frame.n == 2


async def test_a_hung_appliance_is_confirmed_by_re_polls_within_one_interval(
    fleet: FakeFleet,
) -> None:
    fleet.behaviour["hung"] = "hang"
    # a poll and its two re-polls take 0.2 + 0.05 + 0.2 + 0.05 + 0.2 s, within one interval
    opts = PollerOptions(interval_s=1.0, timeout_s=0.2, retry_delay_s=0.05)
    streaks: list[int] = []
    async with Poller(fleet.inventory(["ok", "hung"]), opts) as poller:
        while not streaks or streaks[-1] < 4:
            frame = await asyncio.wait_for(poller.frames.get(), 10)
            assert frame.fail_streak is not None
            assert frame.fail_streak[0] == 0
            streaks.append(int(frame.fail_streak[1]))
        stats = poller.stats
    first = next(i for i, s in enumerate(streaks) if s)
    confirmed = next(i for i, s in enumerate(streaks) if s >= 3)
    # the three polls end in the tick of the first failure or, straddling a boundary, the next
    assert confirmed - first <= 1
    # then one poll per interval: the re-polls are spent until it answers again
    assert streaks[confirmed:] == list(range(streaks[confirmed], 5))
    assert stats.confirm_retries == 2
    # nothing polled but what was counted (a 5th may just have started at the last boundary)
    assert 4 <= fleet.requests["hung"] <= 5


async def test_re_polls_stop_at_the_first_good_answer(fleet: FakeFleet) -> None:
    fleet.behaviour["x"] = "500"
    opts = PollerOptions(interval_s=1.5, timeout_s=0.5, retry_delay_s=0.2)
    async with Poller(fleet.inventory(["x"]), opts) as poller:
        await fleet.wait_for(lambda: fleet.requests["x"] >= 1)
        fleet.behaviour["x"] = "ok"  # the first re-poll finds it well
        await fleet.wait_for(lambda: fleet.requests["x"] >= 2)
        frame = await asyncio.wait_for(poller.frames.get(), 10)
        while frame.failure[0] == PollFailure.NOT_POLLED:
            frame = await asyncio.wait_for(poller.frames.get(), 10)
        assert poller.stats.confirm_retries == 1
    assert frame.failure.tolist() == [PollFailure.OK]
    assert frame.fail_streak is not None
    assert frame.fail_streak.tolist() == [0]
    assert fleet.requests["x"] == 2


async def test_no_re_polls_when_turned_off(fleet: FakeFleet) -> None:
    fleet.behaviour["x"] = "500"
    opts = PollerOptions(interval_s=0.3, timeout_s=0.2, confirm_retries=0)
    async with Poller(fleet.inventory(["x"]), opts) as poller:
        streak = 0
        while streak < 3:
            frame = await asyncio.wait_for(poller.frames.get(), 10)
            assert frame.fail_streak is not None
            streak = int(frame.fail_streak[0])
            assert streak <= frame.seq  # at most one poll per tick
        assert poller.stats.confirm_retries == 0
