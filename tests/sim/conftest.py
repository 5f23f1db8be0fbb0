"""Fixtures of the simulator tests: a fresh SimServer on port 0 and an HTTP client per test."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from sim_helpers import TOKEN

from cdnops.sim.server import SimServer, SimSpec


@pytest.fixture
async def sim(tmp_path: Path) -> AsyncIterator[SimServer]:
    """20 appliances in 2 sites (sea01, ams02); actions take 1% of their real duration."""
    spec = SimSpec(appliances=20, sites=2, seed=7, action_delay_scale=0.01)
    async with SimServer(spec, token=TOKEN, truth_path=tmp_path / "truth.jsonl") as server:
        yield server


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    timeout = aiohttp.ClientTimeout(total=5)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        yield session
