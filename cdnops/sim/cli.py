"""`cdnops simulate`: serve a simulated fleet of appliances until SIGTERM or SIGINT."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from pathlib import Path

from cdnops.errors import ConfigError
from cdnops.sim.scenario import Scenario, load_scenario
from cdnops.sim.server import SimServer
from cdnops.sim.topology import SimSpec

log = logging.getLogger("cdnops.sim")
DEFAULT_TOKEN_ENV = "CDNOPS_APPLIANCE_TOKEN"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `cdnops simulate`."""
    add = parser.add_argument
    add("--appliances", type=int, default=200, help="number of appliances (default 200)")
    add("--sites", type=int, default=10, help="number of sites (default 10)")
    add("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    add("--port", type=int, default=9100, help="port to listen on (default 9100; 0 = any free)")
    add("--speed", type=float, default=1.0, help="simulated seconds per real second")
    add("--seed", type=int, default=0, help="random seed of the fleet")
    add("--scenario", type=Path, help="YAML file of faults to inject over time")
    add("--action-delay-scale", type=float, default=1.0, help="multiplies action durations")
    add("--inventory-out", type=Path, help="write the inventory YAML here")
    add("--truth-out", type=Path, help="append ground-truth events here (JSONL)")
    add("--token-env", default=DEFAULT_TOKEN_ENV, help="environment variable holding the token")
    add("--token-file", type=Path, help="file holding the token (instead of the environment)")


def read_token(args: argparse.Namespace) -> str:
    """The bearer token, from --token-file or the environment.

    Raises:
        ValueError: no token found (the message says where it was looked for).
    """
    token_file: Path | None = args.token_file
    if token_file is not None:
        try:
            token = token_file.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"cannot read token file {token_file}: {exc}") from exc
        if not token:
            raise ValueError(f"token file {token_file} is empty")
        return token
    token = str(os.environ.get(args.token_env, "")).strip()
    if not token:
        raise ValueError(f"no token: set {args.token_env} or pass --token-file")
    return token


def run(args: argparse.Namespace) -> int:
    """`cdnops simulate`: 0 after a clean stop, 1 if serving failed, 2 on bad input."""
    try:
        token = read_token(args)
        spec = SimSpec(
            appliances=args.appliances,
            sites=args.sites,
            seed=args.seed,
            speed=args.speed,
            action_delay_scale=args.action_delay_scale,
        )
        scenario = load_scenario(args.scenario) if args.scenario is not None else None
    except (ValueError, ConfigError) as exc:
        print(f"cdnops simulate: {exc}", file=sys.stderr)
        return 2
    if not logging.getLogger().handlers:
        logging.basicConfig(
            stream=sys.stdout, level=logging.INFO, format="level=%(levelname)s %(message)s"
        )
    try:
        return asyncio.run(_serve(args, spec, token, scenario))
    except ConfigError as exc:
        print(f"cdnops simulate: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"cdnops simulate: cannot serve on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1


async def _serve(
    args: argparse.Namespace, spec: SimSpec, token: str, scenario: Scenario | None
) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    sim = SimServer(
        spec, token=token, host=args.host, port=args.port, scenario=scenario,
        truth_path=args.truth_out,
    )  # fmt: skip
    async with sim:
        where = f"listening on {sim.base_url} (appliances at {sim.base_url}/a/<id>)"
        if args.inventory_out is not None:
            sim.write_inventory(args.inventory_out)
            where += f"; inventory written to {args.inventory_out}"
        print(
            f"cdnops simulate: {spec.appliances} appliances in {spec.sites} sites {where}",
            flush=True,
        )
        await stop.wait()
        log.info(
            "stopping simulator faults=%d truth_records=%d",
            len(sim.engine.faults.faults),
            len(sim.truth),
        )
    return 0
