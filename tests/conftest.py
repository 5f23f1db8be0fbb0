"""Fixtures for the whole suite."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def _restore_cdnops_logger() -> Iterator[None]:
    """A daemon run in-process reconfigures the `cdnops` logger (on start and reload);
    put it back so the next test's caplog sees records again."""
    logger = logging.getLogger("cdnops")
    saved = (list(logger.handlers), logger.level, logger.propagate)
    yield
    logger.handlers[:] = saved[0]
    logger.setLevel(saved[1])
    logger.propagate = saved[2]
