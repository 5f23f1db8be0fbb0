"""`cdnops demo`: a simulated fleet and the daemon against it, for a first look.

Everything runs in one process on 127.0.0.1: the simulator (with the shipped demo
scenario of faults) and a daemon configured by the shipped demo config. The files the
daemon needs (config, inventory, token) are written to a working folder so that a
newcomer can read them, and the demo prints where to look.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import secrets
import signal
import sys
import tempfile
from importlib import resources
from pathlib import Path

import yaml

from cdnops.app import Daemon, load_all
from cdnops.errors import ConfigError
from cdnops.logfmt import setup_logging
from cdnops.sim.scenario import load_scenario
from cdnops.sim.server import SimServer, SimSpec

log = logging.getLogger("cdnops.demo")

TOKEN_ENV = "CDNOPS_APPLIANCE_TOKEN"
# the project's playbooks, when cdnops runs from its source tree (scripts/demo does)
SHIPPED_PLAYBOOKS = Path(__file__).resolve().parents[1] / "playbooks"
API_TOKEN_FILE = "api-token"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `cdnops demo`."""
    parser.add_argument("--appliances", type=int, default=200, help="fleet size (default 200)")
    parser.add_argument("--sites", type=int, default=10, help="number of sites (default 10)")
    parser.add_argument(
        "--speed",
        type=float,
        default=1.0,
        help="simulated seconds per real second (default 1); the demo scenario's faults"
        " start 60 to 270 simulated seconds in, after detection's warm-up",
    )
    parser.add_argument(
        "--http-port",
        type=int,
        default=9108,
        help="the daemon's HTTP port (default 9108; 0 = any free port)",
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="where to write the demo config, inventory and state (default: a temp folder)",
    )
    parser.add_argument(
        "--duration",
        type=float,
        default=None,
        help="stop after this many seconds (default: run until Ctrl-C)",
    )
    parser.add_argument("--no-faults", action="store_true", help="run without the demo scenario")


def _demo_resource(name: str) -> str:
    return resources.files("cdnops").joinpath(name).read_text(encoding="utf-8")


def write_demo_files(workdir: Path, sim: SimServer, http_port: int) -> Path:
    """Write inventory and config for the simulated fleet; returns the config path."""
    workdir.mkdir(parents=True, exist_ok=True)
    sim.write_inventory(workdir / "inventory.yaml")
    config = yaml.safe_load(_demo_resource("data/demo-config.yaml"))
    config["http"]["port"] = http_port
    # a fresh write token for the API, in a file only this user reads (never printed)
    token_file = workdir / API_TOKEN_FILE
    token_file.touch(mode=0o600, exist_ok=True)
    token_file.chmod(0o600)
    token_file.write_text(secrets.token_urlsafe(24) + "\n", encoding="utf-8")
    if SHIPPED_PLAYBOOKS.is_dir():
        config["remediation"] = {"playbooks_dir": str(SHIPPED_PLAYBOOKS)}
    path = workdir / "cdnops.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


async def _run(args: argparse.Namespace, workdir: Path) -> int:
    token = os.environ.get(TOKEN_ENV) or secrets.token_urlsafe(24)
    os.environ[TOKEN_ENV] = token
    scenario = None
    if not args.no_faults:
        with resources.as_file(resources.files("cdnops").joinpath("sim/scenarios/demo.yaml")) as p:
            scenario = load_scenario(p)
    spec = SimSpec(appliances=args.appliances, sites=args.sites, speed=args.speed)
    async with SimServer(
        spec, token=token, scenario=scenario, truth_path=workdir / "truth.jsonl"
    ) as sim:
        config_path = write_demo_files(workdir, sim, args.http_port)
        loaded = await asyncio.to_thread(load_all, config_path)
        daemon = Daemon(config_path, loaded)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, daemon.request_stop)
        loop.add_signal_handler(signal.SIGHUP, daemon.request_reload)
        task = asyncio.create_task(daemon.run(), name="cdnops.daemon")
        await daemon.ready.wait()
        _print_guide(sim, daemon, workdir)
        if args.duration is not None:
            loop.call_later(args.duration, daemon.request_stop)
        return await task


def _print_guide(sim: SimServer, daemon: Daemon, workdir: Path) -> None:
    http = f"http://127.0.0.1:{daemon.http_port}"
    site = sim.inventory()[0]["site"]
    silence = json.dumps({"site": site, "duration_s": 600, "comment": "trying the API", "by": "me"})
    print(
        "\n".join(
            [
                "",
                f"cdnops demo: {len(sim.inventory())} simulated appliances"
                f" at {sim.base_url}/a/<id>",
                f"  daemon metrics:      curl {http}/metrics",
                f"  per-appliance:       curl {http}/metrics/appliances",
                f"  health:              curl {http}/healthz",
                f"  API (docs/api.md):   curl {http}/api/v1/incidents?status=open",
                f"                       curl {http}/api/v1/executions",
                f"  API writes carry the token in {workdir / API_TOKEN_FILE}, e.g. a silence:",
                f'    curl -H "Authorization: Bearer $(cat {workdir / API_TOKEN_FILE})"'
                f" -H 'Content-Type: application/json' -d '{silence}'"
                f" {http}/api/v1/silences",
                f"  config and inventory: {workdir}/cdnops.yaml, {workdir}/inventory.yaml",
                f"  injected faults and actions received (ground truth): {workdir}/truth.jsonl",
                f"  playbooks: {daemon.loaded.settings.remediation.playbooks_dir}",
                "  logs below: one summary line per tick, anomalies as they enter and clear.",
                "  Ctrl-C stops.",
                "",
            ]
        ),
        flush=True,
    )


def run(args: argparse.Namespace) -> int:
    """`cdnops demo`: exit 2 when the demo files do not fit the chosen fleet."""
    setup_logging("info", "auto")
    try:
        if args.workdir is not None:
            return asyncio.run(_run(args, args.workdir))
        with tempfile.TemporaryDirectory(prefix="cdnops-demo-") as tmp:
            return asyncio.run(_run(args, Path(tmp)))
    except ConfigError as exc:
        print(f"cdnops demo: {exc}", file=sys.stderr)
        if not args.no_faults:
            print(
                "cdnops demo: the demo scenario needs the default fleet; try --no-faults",
                file=sys.stderr,
            )
        return 2
