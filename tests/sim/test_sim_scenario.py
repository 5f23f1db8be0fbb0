"""Scenario files: the shipped demo loads, and every kind of mistake is reported with its line."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pytest

from cdnops.errors import ConfigError
from cdnops.sim.faults import KINDS
from cdnops.sim.scenario import load_scenario
from cdnops.sim.server import SimServer, SimSpec


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "scenario.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def messages(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_scenario(path)
    return [str(issue) for issue in info.value.issues]


def test_shipped_demo_scenario_loads_and_fits_the_default_fleet() -> None:
    ref = resources.files("cdnops").joinpath("sim/scenarios/demo.yaml")
    with resources.as_file(ref) as path:
        scenario = load_scenario(path)
    assert scenario.name == "demo"
    assert len({f.kind for f in scenario.faults}) >= 5
    assert min(f.at_s for f in scenario.faults) >= 60
    assert max(f.at_s for f in scenario.faults) <= 600
    SimServer(SimSpec(), token="t", scenario=scenario)  # every target exists


def test_a_valid_scenario_keeps_times_and_params(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "faults:\n"
        "  - {at_s: 5, kind: flapping, target: sea01-oca-001, params: {metric: cpu_util}}\n"
        "  - {at_s: 9.5, duration_s: 30, kind: traffic_surge, target: ams02}\n",
    )
    first, second = load_scenario(path).faults
    assert (first.kind, first.at_s, first.param("metric"), first.num("period_s")) == (
        "flapping",
        5.0,
        "cpu_util",
        30.0,
    )
    assert (second.at_s, second.duration_s, second.num("factor")) == (9.5, 30.0, 1.8)


def test_every_problem_is_reported_with_file_line_and_path(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "faults:\n"
        "  - at_s: 10\n"
        "    kind: meteor\n"
        "    target: sea01\n"
        "  - at_s: -1\n"
        "    kind: malformed\n"
        "    target: sea01-oca-001\n"
        "    params:\n"
        "      variant: gzip\n"
        "  - kind: thermal\n"
        "    target: sea01\n"
        "    colour: red\n",
    )
    kinds = ", ".join(KINDS)
    assert messages(path) == [
        f"{path}:3:11: faults[0].kind: must be one of {kinds}, got 'meteor'",
        f"{path}:5:11: faults[1].at_s: must be a number >= 0, got -1",
        f"{path}:9:7: faults[1].params.variant: must be one of invalid_json, oversized, "
        "wrong_types, nan, got 'gzip'",
        f"{path}:12:5: faults[2].colour: unknown field (known: kind, target, at_s, "
        "duration_s, params)",
    ]


def test_missing_required_param_and_target(tmp_path: Path) -> None:
    path = write(tmp_path, "faults:\n  - kind: flapping\n    params: {period_s: 10}\n")
    assert messages(path) == [
        f"{path}:2:5: faults[0].target: must be an appliance id or a site, got None",
        f"{path}:3:13: faults[0].params.metric: required for flapping",
    ]


def test_duplicate_keys_name_both_lines(tmp_path: Path) -> None:
    path = write(tmp_path, "faults:\n  - kind: hung\n    target: a\n    kind: hung\n")
    assert messages(path) == [
        f"{path}:4:5: faults[0].kind: duplicate key (first on line 2)",
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("faults: [\n", "not valid YAML"),
        ("- 1\n", "must be a mapping with a faults list"),
        ("faults: 3\n", "faults: must be a list of faults"),
        ("name: x\n", "faults: must be a list of faults"),
        ("faults: []\nextra: 1\n", "extra: unknown key"),
        ("faults:\n  - 7\n", "faults[0]: must be a mapping with kind and target"),
        ("faults:\n  - {kind: hung, target: !!python/name:os.system x}\n", "not allowed"),
    ],
)
def test_structural_errors(tmp_path: Path, text: str, expected: str) -> None:
    found = messages(write(tmp_path, text))
    assert any(expected in m for m in found), found


def test_unreadable_file_is_a_config_error(tmp_path: Path) -> None:
    found = messages(tmp_path / "missing.yaml")
    assert len(found) == 1
    assert "cannot read" in found[0]


def test_unknown_target_is_reported_when_the_fleet_is_built(tmp_path: Path) -> None:
    path = write(tmp_path, "faults:\n  - kind: hung\n    target: sea01-oca-001\n"
                 "  - kind: hung\n    target: zzz99\n")  # fmt: skip
    with pytest.raises(ConfigError) as info:
        SimServer(SimSpec(appliances=4, sites=1), token="t", scenario=load_scenario(path))
    assert str(info.value) == (f"{path}:4:5: faults[1].target: unknown appliance or site 'zzz99'")
