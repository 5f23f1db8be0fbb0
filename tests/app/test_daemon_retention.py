"""The daemon prunes what ended over `retention_days` ago from its store, and nothing else."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml

from cdnops.app import STORE_FILE, Daemon, load_all
from cdnops.sim.server import SimServer, SimSpec
from cdnops.store.db import IncidentRow, Store

TOKEN = "retention-token"


@pytest.fixture
async def sim(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[SimServer]:
    monkeypatch.setenv("CDNOPS_RETENTION_TOKEN", TOKEN)
    async with SimServer(SimSpec(appliances=4, sites=2, seed=3), token=TOKEN) as s:
        yield s


async def test_a_long_resolved_incident_is_pruned_at_start_a_recent_one_kept(
    sim: SimServer, tmp_path: Path
) -> None:
    sim.write_inventory(tmp_path / "inventory.yaml")
    config = {
        "inventory": "inventory.yaml",
        "state_dir": "state",
        "appliance_token": {"env": "CDNOPS_RETENTION_TOKEN"},
        "retention_days": 1.0,
        "poll": {"interval_s": 0.2, "timeout_s": 0.15},
        "http": {"port": 0},
        "remediation": {"enabled": False},
    }
    path = tmp_path / "cdnops.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    (tmp_path / "state").mkdir()
    day, now = 86400.0, time.time()
    with Store(tmp_path / "state" / STORE_FILE) as store:
        store.write_incidents(
            [
                IncidentRow("gone", "k1", "resolved", "s", now - 9 * day, now - 9 * day,
                            now - 8 * day, {}),
                IncidentRow("kept", "k2", "resolved", "s", now - 2 * day, now - 0.6 * day,
                            now - 0.5 * day, {}),
            ]
        )  # fmt: skip

    d = Daemon(path, load_all(path))
    task = asyncio.create_task(d.run())
    try:
        await asyncio.wait_for(d.ready.wait(), 10)
        await asyncio.wait_for(d.wait_ticks(1), 10)  # the prune task ran before the first tick
    finally:
        d.request_stop()
        assert await asyncio.wait_for(task, 20) == 0

    with Store(tmp_path / "state" / STORE_FILE) as store:
        assert store.get_incident("gone") is None
        kept = store.get_incident("kept")
        assert kept is not None
        assert kept.status == "resolved"
