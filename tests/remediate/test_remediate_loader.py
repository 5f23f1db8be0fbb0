"""Playbook loading: every problem at its file:line:col, valid files compiled."""

from __future__ import annotations

import argparse
import json
import textwrap
from pathlib import Path

import pytest

from cdnops.config.validate import run as validate_run
from cdnops.errors import ConfigError
from cdnops.remediate.loader import load_playbooks
from cdnops.remediate.schemacli import run as schema_run

GOOD = """\
name: restart-nginx
trigger:
  kind: service_failed
  metric: "service:nginx"
conditions:
  - appliance.services.nginx == "failed"
steps:
  - action: restart_service
    params: {service: "{{ incident.metric[8:] }}"}
  - action: verify
    params: {condition: "appliance.services.nginx == 'running'", on_ok: stop}
"""


def write(tmp_path: Path, text: str, name: str = "pb.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def errors(tmp_path: Path, text: str) -> list[str]:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_playbooks([path])
    return [str(i).removeprefix(f"{path}:") for i in info.value.issues]


def test_good_playbook_compiles(tmp_path: Path) -> None:
    loaded = load_playbooks([write(tmp_path, GOOD)])
    pb = loaded.playbooks["restart-nginx"]
    assert [s.spec.name for s in pb.steps] == ["restart_service", "verify"]
    rendered = pb.steps[0].templates[("service",)].render({"incident": {"metric": "service:nginx"}})
    assert rendered == "nginx"
    assert pb.line == 1


def test_unknown_action_with_suggestion(tmp_path: Path) -> None:
    text = GOOD.replace("action: restart_service", "action: restart_servce")
    [msg] = errors(tmp_path, text)
    assert msg.startswith('8:13: steps[0].action: unknown action "restart_servce" (known: ')
    assert msg.endswith('did you mean "restart_service"?')


def test_unknown_parameter_and_bad_type(tmp_path: Path) -> None:
    text = """\
    name: p
    trigger: {kind: unreachable}
    steps:
      - action: reboot
        params: {force: true}
      - action: wait
        params: {seconds: "5m"}
    """
    assert errors(tmp_path, text) == [
        "5:14: steps[0].params.force: unknown key",
        '7:23: steps[1].params.seconds: must be a number > 0 and <= 3600, got "5m"',
    ]


def test_unknown_metric_in_trigger_and_condition(tmp_path: Path) -> None:
    text = """\
    name: p
    trigger: {metric: [cpu_utl]}
    conditions: ["appliance.metrics.temprature_c > 80"]
    steps:
      - action: drain
    """
    assert errors(tmp_path, text) == [
        '2:20: trigger.metric[0]: unknown metric "cpu_utl"; did you mean "cpu_util"?',
        '3:14: conditions[0]: unknown metric "temprature_c"; did you mean "temperature_c"?',
    ]


def test_template_errors_at_load(tmp_path: Path) -> None:
    text = """\
    name: p
    trigger: {kind: unreachable}
    steps:
      - action: notify
        params: {message: "{{ incident.id "}
      - action: notify
        when: "nosuch.thing"
        params: {message: "x"}
    """
    assert errors(tmp_path, text) == [
        "5:23: steps[0].params.message: template error: unexpected end of template, "
        "expected 'end of print statement'.",
        '7:11: steps[1].when: unknown name "nosuch" (the context has incident, appliance, '
        "playbook, now)",
    ]


def test_trigger_that_can_never_fire(tmp_path: Path) -> None:
    text = """\
    name: p
    trigger:
      kind: unreachable
      severity: warning
    steps:
      - action: reboot
    """
    assert errors(tmp_path, text) == [
        "3:3: trigger: this trigger can never fire: no incident has scope appliance, "
        "kind unreachable, severity warning at once"
    ]


def test_step_after_unconditional_stop(tmp_path: Path) -> None:
    text = """\
    name: p
    trigger: {kind: unreachable}
    steps:
      - action: stop
      - action: reboot
    """
    assert errors(tmp_path, text) == [
        "5:5: steps[1]: unreachable: steps[0] stops the execution unconditionally"
    ]


def test_appliance_action_in_site_playbook(tmp_path: Path) -> None:
    text = """\
    name: p
    trigger: {scope: site}
    steps:
      - action: reboot
    """
    assert errors(tmp_path, text) == [
        "4:13: steps[0].action: reboot acts on an appliance, but the trigger's scope has no "
        "appliance"
    ]


def test_duplicate_names_across_files(tmp_path: Path) -> None:
    write(tmp_path, GOOD, "a.yaml")
    many = "playbooks:\n" + textwrap.indent(GOOD, "    ").replace("    name:", "  - name:", 1)
    write(tmp_path, many, "b.yaml")
    with pytest.raises(ConfigError) as info:
        load_playbooks([tmp_path])
    [issue] = info.value.issues
    first = f"{tmp_path}/a.yaml:1"
    assert issue.message == f'duplicate playbook name "restart-nginx" (first at {first})'
    assert (issue.file, issue.line) == (f"{tmp_path}/b.yaml", 2)


def test_validate_accepts_a_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(tmp_path, GOOD, "good.yaml")
    write(tmp_path, GOOD.replace("on_ok: stop", "on_ok: maybe"), "bad.yaml")
    args = argparse.Namespace(files=[tmp_path], require_token=False)
    assert validate_run(args) == 2
    out, err = capsys.readouterr()
    assert out == f"ok: {tmp_path}/good.yaml (1 playbook)\n"
    assert err == (
        f"{tmp_path}/bad.yaml:11:73: steps[1].params.on_ok: must be one of continue, stop, "
        'got "maybe"\n'
    )


def test_schema_command_prints_json_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert schema_run(argparse.Namespace(kind="playbook")) == 0
    schema = json.loads(capsys.readouterr().out)
    step = schema["$defs"]["Step"]
    assert "restart_service" in step["properties"]["action"]["enum"]
    assert schema["$defs"]["Playbook"]["required"] == ["name", "trigger", "steps"]
