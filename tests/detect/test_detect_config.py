"""The `detect:` section: defaults, documented defaults, validation errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from cdnops.config.detect import DetectConfig, Direction

ROOT = Path(__file__).resolve().parents[2]


def test_documented_section_is_valid_and_equals_the_defaults() -> None:
    doc = yaml.safe_load((ROOT / "docs" / "detection-config.yaml").read_text())
    assert DetectConfig.model_validate(doc["detect"]) == DetectConfig()


def test_config_example_detect_section_is_valid() -> None:
    doc = yaml.safe_load((ROOT / "config.example.yaml").read_text())
    cfg = DetectConfig.model_validate(doc.get("detect") or {})
    assert cfg.temporal.threshold == 0.5


def test_defaults_suit_the_contract_metrics() -> None:
    cfg = DetectConfig()
    assert cfg.rule("cache_hit_ratio").direction is Direction.DOWN
    assert cfg.rule("origin_latency_p99_ms").direction is Direction.UP
    assert cfg.rule("egress_gbps").traffic
    assert cfg.rule("some_vendor_metric") == cfg.default_rule
    assert cfg.bounds["temperature_c"].above == 85.0
    assert cfg.bounds["http_5xx_ratio"].above == 0.05
    assert cfg.counters == {"disk_errors_total": 0.0}


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"hysteresis": {"enter_ticks": 4, "window_ticks": 3}}, "enter_ticks must not exceed"),
        ({"bounds": {"cpu_util": {"above": 0.5, "below": 0.9}}}, "below must be smaller"),
        ({"reachability": {"by_reason": {"gone": 2}}}, "unknown failure reasons: gone"),
        ({"temporal": {"threshold": 1.5}}, "less than or equal to 1"),
        ({"metrics": {"cpu_util": {"direction": "sideways"}}}, "'up', 'down' or 'both'"),
        ({"tempral": {}}, "Extra inputs are not permitted"),
    ],
)
def test_bad_values_are_rejected_clearly(section: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        DetectConfig.model_validate(section)
