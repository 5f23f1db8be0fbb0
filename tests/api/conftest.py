"""Fixtures for the HTTP side: fresh registries, an HTTP client, promtool."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator

import aiohttp
import pytest
from prometheus_client import CollectorRegistry


@pytest.fixture
def needs_promtool() -> None:
    """Skip when promtool is not installed."""
    if shutil.which("promtool") is None:
        pytest.skip("promtool not found on PATH (it ships with Prometheus)")


@pytest.fixture
def registry() -> CollectorRegistry:
    """A fresh registry per test (never the global one)."""
    return CollectorRegistry()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """A client session with a deadline on every request."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as session:
        yield session
