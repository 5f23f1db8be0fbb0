"""`cdnops schema playbook`: print the JSON Schema of playbook files, for editors."""

from __future__ import annotations

import argparse
import json

from cdnops.remediate.schema import json_schema

SCHEMAS = {"playbook": json_schema}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `schema` command line."""
    parser.add_argument("kind", choices=sorted(SCHEMAS), help="which file's schema to print")


def run(args: argparse.Namespace) -> int:
    """Print the schema as JSON on stdout."""
    print(json.dumps(SCHEMAS[args.kind](), indent=2, sort_keys=True))
    return 0
