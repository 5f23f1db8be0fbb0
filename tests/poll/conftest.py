"""Fixtures for the poller's tests: a fresh loopback appliance server per test."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from poll_servers import FakeFleet


@pytest.fixture
async def fleet() -> AsyncIterator[FakeFleet]:
    """A loopback appliance server, closed after the test."""
    async with FakeFleet() as server:
        yield server
