"""contrib/prometheus: promtool accepts the scrape config and rules; the alerts fire as meant."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client import CollectorRegistry

from cdnops.api.metrics import DaemonMetrics
from cdnops.mqtt.metrics import MqttMetrics
from cdnops.remediate.audit import RemediationBus

CONTRIB = Path(__file__).resolve().parents[2] / "contrib" / "prometheus"
RULES = CONTRIB / "cdnops.rules.yml"
PROMTOOL = shutil.which("promtool")

needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool is not installed")

# the alerts the daemon's operators asked for, one per failure mode
EXPECTED_ALERTS = {
    "CdnopsDown",
    "CdnopsAbsent",
    "CdnopsTicksStalled",
    "CdnopsTicksLagging",
    "CdnopsPollsFailingMassively",
    "CdnopsConfigReloadFailed",
    "CdnopsFramesDropped",
    "CdnopsEventOutboxGrowing",
    "CdnopsEventsDropped",
    "CdnopsBreakerOpen",
    "CdnopsBrokerUnreachable",
}


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run(
        [PROMTOOL, *args], capture_output=True, text=True, timeout=60, cwd=CONTRIB, check=False
    )


def _exported_series_names() -> set[str]:
    """Every series name the daemon's /metrics can carry, from its real registry."""
    registry = CollectorRegistry()
    DaemonMetrics(registry, instance="test", version="0")
    MqttMetrics(registry)
    RemediationBus(registry)
    suffixes = {
        "counter": ("_total", "_created"),
        "histogram": ("_bucket", "_sum", "_count", "_created"),
        "info": ("_info",),
    }
    names: set[str] = set()
    for family in registry.collect():
        names.update(family.name + s for s in suffixes.get(family.type, ("",)))
    return names


def _rules() -> list[dict[str, object]]:
    doc = yaml.safe_load(RULES.read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


@needs_promtool
def test_scrape_config_is_valid() -> None:
    result = _promtool("check", "config", "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 1 rule files found" in result.stdout


@needs_promtool
def test_rules_are_valid() -> None:
    result = _promtool("check", "rules", RULES.name)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(EXPECTED_ALERTS)} rules found" in result.stdout


@needs_promtool
def test_alerts_fire_as_the_rule_tests_say() -> None:
    result = _promtool("test", "rules", "cdnops.rules.test.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_asked_alert_is_there_with_a_severity() -> None:
    rules = _rules()
    assert {r["alert"] for r in rules} == EXPECTED_ALERTS
    for rule in rules:
        labels = rule["labels"]
        assert isinstance(labels, dict)
        assert labels["severity"] in {"critical", "warning"}, rule["alert"]


def test_rules_use_only_series_the_daemon_exports() -> None:
    # a renamed metric would leave an alert that silently never fires
    exported = _exported_series_names()
    used = {name for r in _rules() for name in re.findall(r"\bcdnops_\w+", str(r["expr"]))}
    assert used
    assert used <= exported, f"not exported: {sorted(used - exported)}"
