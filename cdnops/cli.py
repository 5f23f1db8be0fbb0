"""The `cdnops` command line: run | demo | simulate | validate | detect | schema | playbook.

Each subcommand lives next to what it drives and exposes `add_arguments(parser)` and
`run(args) -> int`; this module only wires them. Exit codes: 0 ok, 1 the command failed
(message on stderr), 2 bad usage or invalid input files.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import Protocol

from cdnops import __version__

# name -> (module, one-line help); modules are imported only when their command runs,
# so `cdnops validate` does not pay for numpy or aiohttp.
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("cdnops.app", "run the daemon with a config file"),
    "demo": ("cdnops.demo", "run a simulated fleet and the daemon against it"),
    "simulate": ("cdnops.sim.cli", "serve a simulated fleet of appliances"),
    "validate": ("cdnops.config.validate", "check config, inventory and playbook files"),
    "detect": ("cdnops.detect.cli", "backtest the detectors on a timestamp,value CSV"),
    "schema": ("cdnops.remediate.schemacli", "print the JSON Schema of playbook files"),
    "playbook": ("cdnops.remediate.cli", "dry-run playbooks against a sample incident"),
}


class Command(Protocol):
    """What a subcommand module provides."""

    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...

    def run(self, args: argparse.Namespace) -> int: ...


def _load(name: str) -> Command:
    module: Command = importlib.import_module(COMMANDS[name][0])
    return module


def build_parser(argv: Sequence[str]) -> argparse.ArgumentParser:
    """Build the parser; only the chosen subcommand's module is imported."""
    parser = argparse.ArgumentParser(prog="cdnops", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"cdnops {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    chosen = next((a for a in argv if not a.startswith("-")), None)
    for name, (_, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == chosen:
            _load(name).add_arguments(p)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line and run the chosen subcommand."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(args_list).parse_args(args_list)
    try:
        return _load(args.command).run(args)
    except KeyboardInterrupt:
        return 130
