"""contrib/grafana: the dashboard is importable JSON, and every series it queries is one the
daemon really exports (a renamed metric would otherwise leave an empty panel)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from cdnops.api.metrics import DaemonMetrics
from cdnops.incidents.events import EventBus
from cdnops.mqtt.metrics import MqttMetrics
from cdnops.remediate.audit import RemediationBus

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "contrib" / "grafana" / "cdnops-dashboard.json"
METRICS_DOC = ROOT / "docs" / "metrics.md"
SUFFIXES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_sum", "_count"),
    "info": ("_info",),
}


def _exported() -> set[str]:
    """Every series name, from the registries of every part that exports metrics."""
    registry = CollectorRegistry()
    DaemonMetrics(registry, instance="test", version="0")
    EventBus(registry)
    RemediationBus(registry)
    MqttMetrics(registry)
    return {
        family.name + suffix
        for family in registry.collect()
        for suffix in SUFFIXES.get(family.type, ("",))
    }


def _documented_labels() -> dict[str, set[str]]:
    """Metric name -> label names, from the tables of docs/metrics.md."""
    labels: dict[str, set[str]] = {}
    for line in METRICS_DOC.read_text().splitlines():
        cells = [c.strip() for c in line.split("|")]
        if len(cells) > 4 and (m := re.fullmatch(r"`(cdnops_\w+)`", cells[1])):
            labels[m[1]] = set(re.findall(r"`(\w+)`", cells[3]))
    return labels


def _labels_of(series: str, documented: dict[str, set[str]]) -> set[str]:
    for suffix in ("_total", "_bucket", "_sum", "_count", ""):
        if series.endswith(suffix) and series.removesuffix(suffix) in documented:
            return documented[series.removesuffix(suffix)]
    raise AssertionError(f"{series} is not documented in docs/metrics.md")


def _dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def _exprs(dash: dict[str, Any]) -> list[str]:
    return [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]


def test_every_queried_series_is_exported_with_the_labels_used() -> None:
    exported, documented = _exported(), _documented_labels()
    exprs = _exprs(_dashboard())
    assert exprs
    for expr in exprs:
        names = re.findall(r"\bcdnops_\w+", expr)
        for name in names:
            assert name in exported, f"{name} in {expr!r}"
        for name, selector in re.findall(r"\b(cdnops_\w+)\{([^}]*)\}", expr):
            used = set(re.findall(r"(\w+)\s*=~?", selector)) - {"job", "instance"}
            missing = used - _labels_of(name, documented)
            assert not missing, f"{name} has no label {missing} ({expr!r})"
        for by in re.findall(r"by \(([^)]*)\)", expr):
            groups = {g.strip() for g in by.split(",")} - {"le", "job", "instance"}
            assert all(groups <= _labels_of(n, documented) for n in names), f"{expr!r}"


def test_panels_have_unique_ids_and_fit_the_grid_without_overlap() -> None:
    panels = _dashboard()["panels"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    taken: set[tuple[int, int]] = set()
    for p in panels:
        g = p["gridPos"]
        assert g["x"] >= 0, p["title"]
        assert g["x"] + g["w"] <= 24, p["title"]
        xs, ys = range(g["x"], g["x"] + g["w"]), range(g["y"], g["y"] + g["h"])
        cells = {(x, y) for x in xs for y in ys}
        assert not cells & taken, f"{p['title']} overlaps another panel"
        taken |= cells


def test_every_query_uses_the_datasource_and_job_variables() -> None:
    dash = _dashboard()
    names = {v["name"] for v in dash["templating"]["list"]}
    assert {"datasource", "job", "instance", "site"} <= names
    for p in dash["panels"]:
        for t in p.get("targets", []):
            assert t["datasource"]["uid"] == "${datasource}", p["title"]
            assert 'job="$job"' in t["expr"], p["title"]
