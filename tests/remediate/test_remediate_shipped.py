"""Every shipped playbook is valid, and each simulator fault kind has the right one."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
from remediate_helpers import incident

from cdnops.config.validate import run as validate_run
from cdnops.incidents.model import Scope
from cdnops.remediate.loader import load_playbooks, playbook_files
from cdnops.remediate.match import matching

PLAYBOOKS = Path(__file__).resolve().parents[2] / "playbooks"


def test_every_shipped_file_validates(capsys: pytest.CaptureFixture[str]) -> None:
    files = playbook_files([PLAYBOOKS])
    assert len(files) >= 5
    assert validate_run(argparse.Namespace(files=files, require_token=False)) == 0
    assert capsys.readouterr().err == ""
    assert len(load_playbooks([PLAYBOOKS])) == 13


# (what the fault looks like to detection, the playbook an operator expects)
FAULTS = {
    "service_crash nginx": ("service:nginx", "restart-crashed-nginx"),
    "service_crash cache": ("service:cache", "restart-crashed-cache"),
    "service_crash bgp": ("service:bgp", "restart-idle-bgp"),
    "memory_leak": ("mem_util", "memory-leak-ladder"),
    "cache_corruption": ("cache_hit_ratio", "purge-corrupted-cache"),
    "disk_failure": ("disk_errors_total", "drain-failing-disk"),
    "nic_degradation": ("tcp_retransmit_ratio", "drain-degraded-nic"),
    "thermal": ("temperature_c", "drain-overheating"),
    "hung": ("reachability", "reboot-hung"),
}


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_each_fault_kind_matches_its_playbook(fault: str) -> None:
    metric, expected = FAULTS[fault]
    pbs = load_playbooks([PLAYBOOKS]).playbooks.values()
    assert [pb.name for pb in matching(pbs, incident("sea01-oca-001", "sea01", metric=metric))] == [
        expected
    ]


def test_site_outage_matches_only_the_escalation() -> None:
    pbs = load_playbooks([PLAYBOOKS]).playbooks.values()
    site = incident("", "sea01", metric="origin_latency_p99_ms", scope=Scope.SITE)
    [pb] = matching(pbs, site)
    assert pb.name == "escalate-site-outage"
    assert {s.spec.name for s in pb.steps} == {"escalate"}
