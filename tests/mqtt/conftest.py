"""Fixtures for the MQTT tests: a real mosquitto per test, stopped afterwards."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from mqtt_broker import MOSQUITTO, Broker


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    """A running mosquitto on a free loopback port."""
    if not os.access(MOSQUITTO, os.X_OK):
        pytest.fail("mosquitto is not installed (sudo apt-get install mosquitto)")
    folder = tmp_path / "broker"
    folder.mkdir()
    b = Broker(folder)
    b.start()
    yield b
    b.stop()
