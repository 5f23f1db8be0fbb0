"""Guards on their own: breaker states and the probe, persisted across reopening."""

from __future__ import annotations

from pathlib import Path

from remediate_helpers import Clock, config

from cdnops.remediate.guards import Guards
from cdnops.store.db import Store


def test_breaker_probe_is_freed_by_an_execution_that_proves_nothing(tmp_path: Path) -> None:
    clock = Clock()
    cfg = config(breaker={"failures": 1, "window_s": 60, "cool_off_s": 10})
    with Store(tmp_path / "s.db") as store:
        guards = Guards(cfg, store, clock)
        assert guards.record_result("p", ok=False) == "opened"
        clock.now += 11
        assert guards.breaker("p").ok
        guards.note_start("p")
        assert guards.breaker("p").reason == "half-open: a probe execution is running"
        guards.release_probe("p")  # e.g. the probe was a dry run
        assert guards.breaker("p").ok
    with Store(tmp_path / "s.db") as store:
        assert Guards(cfg, store, clock).breaker_state("p") == "half_open"


def test_probe_success_closes_and_failure_reopens(tmp_path: Path) -> None:
    clock = Clock()
    cfg = config(breaker={"failures": 2, "window_s": 60, "cool_off_s": 10})
    with Store(tmp_path / "s.db") as store:
        guards = Guards(cfg, store, clock)
        assert guards.record_result("p", ok=False) is None
        assert guards.record_result("p", ok=False) == "opened"
        clock.now += 11
        guards.breaker("p")
        guards.note_start("p")
        assert guards.record_result("p", ok=False) == "opened"
        assert not guards.breaker("p").ok
        clock.now += 11
        guards.breaker("p")
        guards.note_start("p")
        assert guards.record_result("p", ok=True) == "closed"
        assert guards.breaker("p").ok
