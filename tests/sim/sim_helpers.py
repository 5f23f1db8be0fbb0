"""Helpers of the simulator tests: requests against a SimServer and awaiting its truth log."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from cdnops.sim.server import SimServer

TOKEN = "sim-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SEA = [f"sea01-oca-{i:03d}" for i in range(1, 11)]
AMS = [f"ams02-oca-{i:03d}" for i in range(1, 11)]


def url(sim: SimServer, appliance: str, path: str) -> str:
    return f"{sim.base_url}/a/{appliance}/{path}"


async def health(client: aiohttp.ClientSession, sim: SimServer, appliance: str) -> Any:
    async with client.get(url(sim, appliance, "health")) as resp:
        assert resp.status == 200, await resp.text()
        return await resp.json()


async def metric(client: aiohttp.ClientSession, sim: SimServer, appliance: str, name: str) -> float:
    doc = await health(client, sim, appliance)
    return float(doc["metrics"][name])


async def act(
    client: aiohttp.ClientSession,
    sim: SimServer,
    appliance: str,
    action: str,
    body: object | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any]:
    hdrs = AUTH if headers is None else headers
    async with client.post(
        url(sim, appliance, f"actions/{action}"), json={} if body is None else body, headers=hdrs
    ) as resp:
        return resp.status, await resp.json()


async def run_action(
    client: aiohttp.ClientSession,
    sim: SimServer,
    appliance: str,
    action: str,
    body: object | None = None,
) -> dict[str, object]:
    """Start an action, assert it was accepted, await its `action_finished` truth record."""
    start = len(sim.truth)
    status, doc = await act(client, sim, appliance, action, body)
    assert status == 202, doc
    action_id = doc["action_id"]
    return await sim.next_truth(
        lambda r: r["event"] == "action_finished" and r["action_id"] == action_id,
        start=start,
        timeout_s=5.0,
    )


async def until(check: Callable[[], Awaitable[bool]], timeout_s: float = 3.0) -> None:
    """Await a condition that has no event of its own, checking it against a deadline."""
    deadline = time.monotonic() + timeout_s
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s} s")
        await asyncio.sleep(0.02)
