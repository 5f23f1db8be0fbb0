"""`cdnops playbook test FILE --incident INCIDENT.yaml`: a dry run that prints the plan."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from cdnops.config.remediate import RemediateConfig
from cdnops.config.settings import load_settings
from cdnops.errors import ConfigError
from cdnops.incidents.model import Incident
from cdnops.remediate.context import incident_context
from cdnops.remediate.incidentfile import Sample, load_sample
from cdnops.remediate.loader import CompiledPlaybook, CompiledStep, load_playbooks
from cdnops.remediate.match import matching
from cdnops.remediate.plan import capacity_verdict, guard_verdicts
from cdnops.remediate.templates import TemplateError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `playbook` command line."""
    sub = parser.add_subparsers(dest="playbook_command", metavar="SUBCOMMAND", required=True)
    test = sub.add_parser("test", help="dry-run playbooks against an incident and print the plan")
    test.add_argument("files", nargs="+", type=Path, metavar="FILE", help="playbooks (or folders)")
    test.add_argument(
        "--incident", required=True, type=Path, help="an incident and the live state (YAML)"
    )
    test.add_argument("--config", type=Path, help="take the remediation settings from this config")


def run(args: argparse.Namespace) -> int:
    """0 when a playbook would run, 1 when none would, 2 on invalid files."""
    try:
        config = load_settings(args.config).remediation if args.config else RemediateConfig()
        books = load_playbooks(args.files)
        sample = load_sample(args.incident)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    inc = sample.incident
    print(f"incident: {inc.summary()} metric={inc.metric} severity={inc.severity}")
    matched = matching(books.playbooks.values(), inc)
    unmatched = sorted(set(books.playbooks) - {pb.name for pb in matched})
    if unmatched:
        print(f"not matched: {', '.join(unmatched)}")
    runs = [_report(pb, sample, config) for pb in matched]
    if not any(runs):
        print("no playbook would run")
    return 0 if any(runs) else 1


def _report(pb: CompiledPlaybook, sample: Sample, config: RemediateConfig) -> bool:
    dry = config.dry_run or pb.playbook.mode == "dry_run"
    print(f"\nplaybook {pb.name} ({pb.file}:{pb.line}), mode {'dry_run' if dry else 'enforce'}")
    ctx = _context(pb, sample.incident, sample.appliance)
    verdicts = guard_verdicts(pb, sample.incident, ctx)
    print("  guards:")
    for v in verdicts:
        print(f"    {'ok     ' if v.ok else 'BLOCKS '} {v.guard:<15} {v.reason}".rstrip())
    blocked = any(not v.ok for v in verdicts)
    print("  plan:" if not blocked else "  plan (would not start):")
    _steps(pb.steps, ctx, sample, config)
    if pb.on_failure:
        print("  on_failure:")
        _steps(pb.on_failure, ctx, sample, config)
    return not blocked


def _context(pb: CompiledPlaybook, inc: Incident, appliance: dict[str, Any]) -> dict[str, Any]:
    return {
        "incident": incident_context(inc),
        "appliance": appliance,
        "playbook": {"name": pb.name, "dry_run": True},
        "now": time.time(),
    }


def _steps(
    steps: tuple[CompiledStep, ...], ctx: dict[str, Any], sample: Sample, config: RemediateConfig
) -> None:
    for i, cs in enumerate(steps, 1):
        line = f"    {i}. {cs.spec.name} {_params(cs, ctx)}".rstrip()
        if cs.when is not None:
            line += f"  when {cs.when.source!r}: {_evaluate(cs, ctx)}"
        print(line)
        if cs.spec.removes_capacity:
            v = capacity_verdict(sample, config)
            print(f"       capacity: {'ok' if v.ok else 'BLOCKS'}: {v.reason}")


def _params(cs: CompiledStep, ctx: dict[str, Any]) -> str:
    raw = dict(cs.step.params)
    for path, template in cs.templates.items():
        try:
            value = template.render(ctx)
        except TemplateError as exc:
            value = f"<{exc}>"
        if len(path) == 1:
            raw[path[0]] = value
        else:
            raw[path[0]] = {**raw[path[0]], path[1]: value}
    return json.dumps(raw, sort_keys=True) if raw else ""


def _evaluate(cs: CompiledStep, ctx: dict[str, Any]) -> str:
    assert cs.when is not None
    try:
        return "runs" if cs.when.evaluate(ctx) else "skipped"
    except TemplateError as exc:
        return f"skipped ({exc})"
