"""A real Alertmanager (Debian's `prometheus-alertmanager`) on 127.0.0.1, for the intake tests."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import yaml

BINARY = "prometheus-alertmanager"
READY_TIMEOUT_S = 15.0


def binary() -> str | None:
    """The Alertmanager executable, if installed (Debian names it prometheus-alertmanager)."""
    return shutil.which(BINARY) or shutil.which("alertmanager")


def free_port() -> int:
    """A port free on 127.0.0.1 right now (Alertmanager cannot listen on port 0 and say)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def config(url: str, token_file: Path, **route: str) -> dict[str, Any]:
    """alertmanager.yml: every alert its own group, sent to `url` with a bearer token from a
    file, resolved ones too; short waits so a test takes seconds."""
    return {
        "route": {
            "receiver": "cdnops",
            "group_by": ["..."],
            "group_wait": "100ms",
            "group_interval": "300ms",
            "repeat_interval": "1h",
            **route,
        },
        "receivers": [
            {
                "name": "cdnops",
                "webhook_configs": [
                    {
                        "url": url,
                        "send_resolved": True,
                        "max_alerts": 100,
                        "http_config": {
                            "authorization": {
                                "type": "Bearer",
                                "credentials_file": str(token_file),
                            }
                        },
                    }
                ],
            }
        ],
    }


class Alertmanager:
    """A running Alertmanager and its API v2."""

    def __init__(self, port: int, session: aiohttp.ClientSession) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self._session = session

    async def post_alert(
        self,
        labels: Mapping[str, str],
        *,
        annotations: Mapping[str, str] | None = None,
        resolved: bool = False,
    ) -> None:
        """Fire (or, with `resolved`, end now) one alert through POST /api/v2/alerts."""
        now = datetime.now(UTC)
        body: dict[str, Any] = {
            "labels": dict(labels),
            "annotations": dict(annotations or {}),
            "generatorURL": "http://prometheus.example:9090/graph",
            "startsAt": now.isoformat(),
        }
        if resolved:
            body["endsAt"] = now.isoformat()
        async with self._session.post(f"{self.url}/api/v2/alerts", json=[body]) as resp:
            assert resp.status == 200, await resp.text()


@asynccontextmanager
async def running(workdir: Path, am_config: Mapping[str, Any]) -> AsyncIterator[Alertmanager]:
    """Start Alertmanager with `am_config`, wait until it is ready, stop it afterwards."""
    exe = binary()
    assert exe is not None
    config_file = _write_config(workdir, am_config)
    port = free_port()
    log = (workdir / "alertmanager.log").open("wb")
    proc = await asyncio.create_subprocess_exec(
        exe,
        f"--config.file={config_file}",
        f"--storage.path={workdir / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",  # empty: no clustering, no gossip port
        stdout=log,
        stderr=log,
    )
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
            am = Alertmanager(port, session)
            await _wait_ready(am, proc, workdir)
            yield am
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            proc.kill()
            await proc.wait()
        log.close()


def _write_config(workdir: Path, am_config: Mapping[str, Any]) -> Path:
    workdir.mkdir(parents=True, exist_ok=True)
    config_file = workdir / "alertmanager.yml"
    config_file.write_text(yaml.safe_dump(dict(am_config)), encoding="utf-8")
    return config_file


def _output(workdir: Path) -> str:
    return (workdir / "alertmanager.log").read_text(errors="replace")


async def _wait_ready(am: Alertmanager, proc: asyncio.subprocess.Process, workdir: Path) -> None:
    # polling with a deadline: the only way to know an external process is ready
    deadline = time.monotonic() + READY_TIMEOUT_S
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=1)) as s:
        while time.monotonic() < deadline:
            if proc.returncode is not None:
                break
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with s.get(f"{am.url}/-/ready") as resp:
                    if resp.status == 200:
                        return
            await asyncio.sleep(0.05)
    raise AssertionError(f"alertmanager did not become ready:\n{_output(workdir)}")
