"""The tracker's triage jobs: the history ring, jobs submitted, results picked up."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from concurrent.futures import Future

from cdnops.config.incidents import TriageConfig
from cdnops.incidents.history import History
from cdnops.incidents.model import Incident, TriageSignal
from cdnops.incidents.triage import MIN_TICKS, Triage, job_for
from cdnops.model import FleetFrame

log = logging.getLogger("cdnops.incidents")


class TriageQueue:
    """Owns the history ring and the futures; the tracker asks it what finished.

    Submitting copies the incident's window out of the ring on the caller's thread
    (a few hundred kilobytes for a large site), so the pool never reads the ring
    while the next tick writes it.
    """

    def __init__(self, config: TriageConfig, triage: Triage | None = None) -> None:
        self._owns = triage is None
        self.triage = triage if triage is not None else Triage(config)
        self.history = History(config.history_ticks)
        self._pending: dict[str, Future[list[TriageSignal]]] = {}

    def append(self, frame: FleetFrame) -> None:
        """Keep one tick of history."""
        self.history.append(frame)

    def submit(self, incident: Incident, appliances: Sequence[str]) -> bool:
        """Triage `incident` over the history of `appliances`; False if history is too short."""
        if len(self.history) < MIN_TICKS:
            return False
        window = self.history.window(self.history.rows(appliances))
        job = job_for(incident.snapshot(), window, self.triage.config)
        self._pending[incident.id] = self.triage.submit(job)
        return True

    def finished(self) -> list[tuple[str, list[TriageSignal]]]:
        """(incident id, signals) of every job done since the last call; failures are logged."""
        out = []
        for incident_id in [i for i, fut in self._pending.items() if fut.done()]:
            fut = self._pending.pop(incident_id)
            if fut.cancelled():
                continue
            exc = fut.exception()
            if exc is not None:
                log.warning("triage of %s failed: %r", incident_id, exc)
                continue
            out.append((incident_id, fut.result()))
        return out

    async def wait(self, timeout_s: float) -> None:
        """Wait until every job in flight is done, at most `timeout_s`."""
        pending = [asyncio.wrap_future(f) for f in self._pending.values()]
        if pending:
            await asyncio.wait(pending, timeout=timeout_s)

    def close(self) -> None:
        """Drop queued jobs; stop the pool if this queue made it."""
        for fut in self._pending.values():
            fut.cancel()
        self._pending.clear()
        if self._owns:
            self.triage.close()
