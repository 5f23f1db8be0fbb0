"""Ground truth: every fault and action event, kept in memory and appended to a JSONL file."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

import orjson

Record = dict[str, object]
log = logging.getLogger(__name__)
# The fields worth a log line; the rest (params, bodies, appliance lists) stay in the file.
LOGGED = (
    "fault_id",
    "kind",
    "target",
    "appliance",
    "action",
    "action_id",
    "status",
    "answer_status",
)


class TruthLog:
    """An append-only list of records that tests can await.

    Records carry `ts` (wall clock) and `sim_ts` (the simulated appliances' clock).
    The file, if any, gets one JSON object per line, flushed per record so that a
    benchmark reading it while the simulator runs sees every event so far.
    """

    def __init__(self, path: Path | None = None) -> None:
        self.records: list[Record] = []
        self._path = path
        self._file: IO[bytes] | None = None
        self._changed = asyncio.Event()

    def open(self) -> None:
        """Open (truncate) the file, if any."""
        if self._path is not None:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self._path.open("wb")

    def close(self) -> None:
        """Close the file; the in-memory records stay readable."""
        if self._file is not None:
            self._file.close()
            self._file = None

    def add(self, event: str, sim_ts: float, **fields: object) -> Record:
        """Append one record and wake whoever awaits a new one."""
        record: Record = {"ts": round(time.time(), 6), "sim_ts": round(sim_ts, 3), "event": event}
        record.update(fields)
        self.records.append(record)
        if self._file is not None:
            # Small appends to a local file: cheaper than a thread hop per event.
            self._file.write(orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE))
            self._file.flush()
        self._changed.set()
        self._changed = asyncio.Event()
        if log.isEnabledFor(logging.INFO):
            fields_text = " ".join(f"{k}={record[k]}" for k in LOGGED if record.get(k) is not None)
            log.info("sim %s %s", event, fields_text)
        return record

    async def wait_for(
        self, predicate: Callable[[Record], bool], *, timeout_s: float = 5.0, start: int = 0
    ) -> Record:
        """The first record from index `start` on that matches, awaiting it if need be.

        Raises:
            TimeoutError: no matching record within `timeout_s`.
        """
        async with asyncio.timeout(timeout_s):
            seen = start
            while True:
                for record in self.records[seen:]:
                    if predicate(record):
                        return record
                seen = len(self.records)
                await self._changed.wait()
