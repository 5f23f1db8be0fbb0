"""`cdnops playbook test`: the plan and each guard's verdict for a sample incident."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from cdnops.cli import main

PLAYBOOKS = Path(__file__).resolve().parents[2] / "playbooks"

HOT = """\
incident:
  subject: sea01-oca-003
  site: sea01
  metric: temperature_c
  anomalies:
    - {metric: temperature_c, detector: bounds, value: 95}
appliance:
  state: serving
  reachable: true
  metrics: {temperature_c: 95.0}
site: {appliances: 8, unavailable: 1}
"""


def sample(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "incident.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_prints_guards_and_plan(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["playbook", "test", str(PLAYBOOKS / "hardware.yaml"),
                 "--incident", str(sample(tmp_path, HOT))])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0
    assert "playbook drain-overheating (" in out
    assert "    ok      conditions      2 hold\n" in out
    assert (
        "    1. drain\n"
        "       capacity: ok: site sea01 keeps 6 serving\n"
        '    2. escalate {"reason": "sea01-oca-003 overheating: drained to cool down"}\n'
    ) in out


def test_capacity_and_conditions_verdicts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = HOT.replace("unavailable: 1", "unavailable: 2").replace("95.0}", "70.0}")
    code = main(["playbook", "test", str(PLAYBOOKS), "--incident", str(sample(tmp_path, text))])
    out = capsys.readouterr().out
    assert code == 1
    assert "    BLOCKS  conditions      appliance.metrics.temperature_c is not none and " in out
    assert "capacity: BLOCKS: site sea01 would have 3 of 8 appliances unavailable (max 0.25)" in out
    assert out.endswith("no playbook would run\n")


def test_bad_sample_is_reported_at_its_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = sample(tmp_path, "incident:\n  subject: x\n  metric: 3\n")
    assert main(["playbook", "test", str(PLAYBOOKS), "--incident", str(path)]) == 2
    err = capsys.readouterr().err
    assert err == (
        f"{path}:3:11: incident.metric: must be a string, got 3 "
        "(put it in quotes to keep it as text)\n"
    )
