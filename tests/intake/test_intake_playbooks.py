"""Playbook files written for alert incidents (`kind: alert`, the alert's name as metric)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from intake_helpers import Rig, alert

from cdnops.remediate.loader import load_playbooks
from cdnops.remediate.match import matching

PLAYBOOK = """\
name: edge-down-restart
trigger:
  kind: alert
  metric: EdgeDown
  severity: critical
  labels: {team: cdn-edge}
steps:
  - action: restart_service
    params: {service: nginx}
"""


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    r = Rig(tmp_path / "state.db")
    yield r
    r.close()


def test_the_documented_alert_playbook_loads_and_matches(rig: Rig, tmp_path: Path) -> None:
    (tmp_path / "edge.yaml").write_text(PLAYBOOK, encoding="utf-8")
    playbooks = load_playbooks([tmp_path / "edge.yaml"])
    rig.send(alert("EdgeDown", appliance="sea01-a01", severity="critical", team="cdn-edge"))
    (inc,) = rig.open()
    assert [pb.name for pb in matching(playbooks.playbooks.values(), inc)] == ["edge-down-restart"]
