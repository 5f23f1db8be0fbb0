"""A real `cdnops run` subprocess for tests: start it, read its log lines, signal it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sys
from pathlib import Path


class DaemonProcess:
    """`python -m cdnops run --config FILE` with its output collected line by line."""

    def __init__(self, config: Path, *, env: dict[str, str]) -> None:
        self.config = config
        self.env = {**os.environ, **env}
        self.lines: list[str] = []
        self._changed = asyncio.Condition()
        self.proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "cdnops",
            "run",
            "--config",
            str(self.config),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=self.env,
        )
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.proc is not None
        assert self.proc.stdout is not None
        async for raw in self.proc.stdout:
            async with self._changed:
                self.lines.append(raw.decode(errors="replace").rstrip("\n"))
                self._changed.notify_all()
        async with self._changed:
            self._changed.notify_all()

    async def wait_line(
        self, pattern: str, *, timeout_s: float = 15.0, after: int = 0
    ) -> re.Match[str]:
        """Wait until a log line (from index `after` on) matches `pattern`; return the match."""
        regex = re.compile(pattern)

        def found() -> re.Match[str] | None:
            for line in self.lines[after:]:
                if m := regex.search(line):
                    return m
            return None

        async def wait() -> re.Match[str]:
            async with self._changed:
                while (m := found()) is None:
                    if self._reader is not None and self._reader.done():
                        raise AssertionError(f"daemon exited before {pattern!r}:\n" + self.output())
                    await self._changed.wait()
                return m

        try:
            return await asyncio.wait_for(wait(), timeout_s)
        except TimeoutError:
            raise AssertionError(f"no line matching {pattern!r}:\n" + self.output()) from None

    def output(self) -> str:
        return "\n".join(self.lines)

    def send(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    async def wait_exit(self, timeout_s: float = 20.0) -> int:
        assert self.proc is not None
        code = await asyncio.wait_for(self.proc.wait(), timeout_s)
        if self._reader is not None:
            await asyncio.wait_for(self._reader, timeout_s)
        return code

    async def close(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            await self.proc.wait()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
