"""The shipped Alertmanager example: valid, routes the fleet's alerts to cdnops, and works."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web
from am_process import binary, running
from intake_helpers import Rig

from cdnops.intake.alertmanager import IntakeResult

EXAMPLE = Path(__file__).parents[2] / "contrib" / "alertmanager" / "alertmanager.yml"
TOKEN = "contrib-token"

needs_amtool = pytest.mark.skipif(shutil.which("amtool") is None, reason="amtool not installed")


def amtool(*args: str) -> str:
    done = subprocess.run(
        ["amtool", *args], capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@needs_amtool
def test_the_example_passes_amtool_check_config() -> None:
    assert "SUCCESS" in amtool("check-config", str(EXAMPLE))


@needs_amtool
@pytest.mark.parametrize(
    ("labels", "receivers"),
    [
        (["team=cdn-edge", "alertname=EdgeDown"], "cdnops,default"),
        (["alertname=CdnopsDown", "instance=ops:9108"], "default"),
    ],
)
def test_the_example_routes_only_the_fleets_alerts_to_cdnops(
    labels: list[str], receivers: str
) -> None:
    assert amtool("config", "routes", "test", f"--config.file={EXAMPLE}", *labels) == receivers


def example_for_test(url: str, token_file: Path) -> dict[str, Any]:
    """The example with the test's URL, token file and waits of milliseconds."""
    cfg: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    route = cfg["route"]["routes"][0]
    route.update(group_wait="100ms", group_interval="300ms")
    (hook,) = next(r for r in cfg["receivers"] if r["name"] == "cdnops")["webhook_configs"]
    hook["url"] = url
    hook["http_config"]["authorization"]["credentials_file"] = str(token_file)
    return cfg


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    r = Rig(tmp_path / "state.db")
    yield r
    r.close()


@pytest.mark.skipif(binary() is None, reason="prometheus-alertmanager not installed")
async def test_the_example_delivers_fleet_alerts_to_the_intake(rig: Rig, tmp_path: Path) -> None:
    got: asyncio.Queue[IntakeResult] = asyncio.Queue()
    names: list[str] = []

    async def handle(request: web.Request) -> web.Response:
        assert request.headers["Authorization"] == f"Bearer {TOKEN}"
        body = await request.json()
        names.extend(a["labels"]["alertname"] for a in body["alerts"])
        result = rig.intake.ingest(body)
        await got.put(result)
        return web.json_response(result.to_json())

    app = web.Application()
    app.router.add_post("/api/v1/alerts/alertmanager", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        url = f"http://127.0.0.1:{runner.addresses[0][1]}/api/v1/alerts/alertmanager"
        token_file = tmp_path / "token"
        token_file.write_text(TOKEN, encoding="utf-8")
        async with running(tmp_path / "am", example_for_test(url, token_file)) as am:
            await am.post_alert({"alertname": "CdnopsDown", "instance": "ops:9108"})
            await am.post_alert({"alertname": "EdgeDown", "team": "cdn-edge", "appliance": "x1"})
            result = await asyncio.wait_for(got.get(), 15)
        assert len(result.opened) == 1
        assert names == ["EdgeDown"]  # the daemon's own alert went to humans only
        (inc,) = rig.open()
        assert (inc.subject, inc.metric) == ("x1", "EdgeDown")
    finally:
        await runner.cleanup()
