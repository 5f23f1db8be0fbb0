"""Settings: the example file, defaults, paths, and exact operator messages for bad input."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from pydantic import ValidationError

from cdnops.config.inventory import load_inventory
from cdnops.config.settings import Settings, load_settings
from cdnops.errors import ConfigError
from cdnops.model import CONTRACT_METRICS, HealthFormat

REPO = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).resolve().parent / "fixtures"
MINIMAL = "inventory: inventory.yaml\nappliance_token: {env: CDNOPS_TOKEN}\n"


def _write(tmp_path: Path, text: str, name: str = "cdnops.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def _messages(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    return [str(i) for i in info.value.issues]


def test_example_config_loads_with_its_inventory() -> None:
    settings = load_settings(REPO / "config.example.yaml")
    assert settings.inventory == REPO / "inventory.example.yaml"
    assert settings.appliance_token.env == "CDNOPS_APPLIANCE_TOKEN"
    inventory = load_inventory(settings.inventory, settings.poll.health_format)
    assert len(inventory.appliances) == 5
    assert inventory.sites == ("ams02", "sea01")


def test_example_config_states_the_defaults() -> None:
    # the example documents the defaults: loading it must give what an empty section gives
    example = load_settings(REPO / "config.example.yaml")
    defaults = Settings.model_validate(
        {"inventory": example.inventory, "appliance_token": {"env": "CDNOPS_APPLIANCE_TOKEN"}},
        context={"base_dir": REPO},
    )
    assert example.model_dump() == defaults.model_dump()


def test_defaults(tmp_path: Path) -> None:
    settings = load_settings(_write(tmp_path, MINIMAL))
    assert settings.instance == "cdnops"
    assert settings.state_dir == tmp_path / "state"
    assert settings.shutdown_grace_s == 10
    poll = settings.poll
    assert (poll.interval_s, poll.timeout_s, poll.connect_timeout_s) == (10, 2.0, 1.0)
    assert (poll.concurrency, poll.max_body_bytes) == (512, 65536)
    assert poll.metrics == CONTRACT_METRICS
    assert poll.health_format is HealthFormat.JSON
    assert (settings.http.listen, settings.http.port) == ("127.0.0.1", 9108)
    assert settings.http.per_appliance_metrics is False
    assert (settings.logging.level, settings.logging.format) == ("info", "auto")


def test_relative_paths_resolve_against_the_config_folder(tmp_path: Path) -> None:
    conf = tmp_path / "etc"
    conf.mkdir()
    path = _write(
        conf,
        f"""\
        inventory: fleet/inventory.yaml
        state_dir: {tmp_path / "var"}
        appliance_token: {{file: secrets/token}}
        """,
    )
    settings = load_settings(path)
    assert settings.inventory == conf / "fleet" / "inventory.yaml"
    assert settings.state_dir == tmp_path / "var"
    assert settings.appliance_token.file == conf / "secrets" / "token"


def test_settings_are_frozen(tmp_path: Path) -> None:
    settings = load_settings(_write(tmp_path, MINIMAL))
    with pytest.raises(ValidationError):
        settings.poll.interval_s = 1


def test_unknown_key(tmp_path: Path) -> None:
    path = _write(tmp_path, MINIMAL + "http:\n  prot: 9000\n")
    assert _messages(path) == [
        f"{path}:4:3: http.prot: unknown key (valid keys here: listen, port, "
        'per_appliance_metrics); did you mean "port"?'
    ]


def test_wrong_type(tmp_path: Path) -> None:
    path = _write(tmp_path, MINIMAL + "http:\n  per_appliance_metrics: sometimes\n")
    assert _messages(path) == [
        f'{path}:4:26: http.per_appliance_metrics: must be true or false, got "sometimes"'
    ]


def test_several_errors_are_all_reported_in_file_order() -> None:
    path = FIXTURES / "several_errors.yaml"
    valid_poll = "interval_s, timeout_s, connect_timeout_s, concurrency, max_body_bytes, metrics"
    valid_top = (
        "instance, inventory, state_dir, appliance_token, shutdown_grace_s, retention_days, "
        "poll, http"
    )
    assert _messages(path) == [
        f"{path}:5:19: shutdown_grace_s: must be a number > 0, got -1",
        f'{path}:7:15: poll.interval_s: must be a number > 0, got "5m"',
        f"{path}:9:3: poll.concurency: unknown key (valid keys here: {valid_poll}, "
        'health_format, confirm_retries, retry_delay_s); did you mean "concurrency"?',
        f"{path}:10:19: poll.max_body_bytes: must be an integer >= 1024, got 100",
        f"{path}:12:11: http.listen: must be an IP address such as 127.0.0.1, 0.0.0.0 or ::, "
        'got "localhost"',
        f'{path}:14:3: http.port: duplicate key "port": first at line 13, again at line 14 '
        "(only one may be given)",
        f"{path}:14:9: http.port: must be an integer >= 0 and <= 65535, got 70000",
        f'{path}:16:10: logging.level: must be one of debug, info, warning, error, got "verbose"',
        f"{path}:17:1: colour: unknown key (valid keys here: {valid_top}, logging, detect, "
        "incidents, remediation, api, mqtt)",
    ]


def test_missing_required_keys(tmp_path: Path) -> None:
    path = _write(tmp_path, "instance: edge-1\n")
    assert _messages(path) == [
        f"{path}:1:1: inventory: required key is missing (expected a path)",
        f"{path}:1:1: appliance_token: required key is missing (expected a mapping with "
        "the keys env, file)",
    ]


def test_timeout_must_be_below_interval(tmp_path: Path) -> None:
    path = _write(tmp_path, MINIMAL + "poll:\n  interval_s: 2\n  timeout_s: 2\n")
    assert _messages(path) == [
        f"{path}:5:14: poll.timeout_s: must be less than poll.interval_s (2), got 2: "
        "a poll must end before the next one starts"
    ]


def test_retry_delay_must_be_below_interval(tmp_path: Path) -> None:
    path = _write(tmp_path, MINIMAL + "poll:\n  interval_s: 2\n  retry_delay_s: 2.5\n")
    assert _messages(path) == [
        f"{path}:5:18: poll.retry_delay_s: must be less than poll.interval_s (2), got 2.5: "
        "a confirmation re-poll comes before the next interval"
    ]


def test_metrics_are_names_and_unique(tmp_path: Path) -> None:
    path = _write(tmp_path, MINIMAL + "poll:\n  metrics: [cpu_util, mem_util, cpu_util]\n")
    assert _messages(path) == [
        f'{path}:4:33: poll.metrics[2]: duplicate metric "cpu_util" (also item 0)'
    ]
    path = _write(tmp_path, MINIMAL + "poll:\n  metrics: [cpu-util, 7]\n")
    assert _messages(path) == [
        f"{path}:4:13: poll.metrics[0]: must be a metric name (letters, digits and _, "
        'not starting with a digit), got "cpu-util"',
        f"{path}:4:23: poll.metrics[1]: must be a string, got 7 "
        "(put it in quotes to keep it as text)",
    ]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("poll: {interval_s: .nan}", "3:20: poll.interval_s: must be a number > 0, got nan"),
        ("poll: {concurrency: 1.5}", "3:21: poll.concurrency: must be an integer >= 1, got 1.5"),
        ("poll: {interval_s: true}", "3:20: poll.interval_s: must be a number > 0, got true"),
        (
            "poll: 10",
            "3:7: poll: must be a mapping with the keys interval_s, timeout_s, "
            "connect_timeout_s, concurrency, max_body_bytes, metrics, health_format, "
            "confirm_retries, retry_delay_s, got 10",
        ),
        ("state_dir: ''", '3:12: state_dir: must be a path, got ""'),
        (
            "instance: 'two words'",
            '3:11: instance: must be 1 to 64 characters from A-Z a-z 0-9 _ . -, got "two words"',
        ),
        (
            "logging: {format: json}",
            '3:19: logging.format: must be one of auto, logfmt, journald, got "json"',
        ),
        ("shutdown_grace_s:", "3:18: shutdown_grace_s: must be a number > 0, got an empty value"),
    ],
)
def test_value_messages(tmp_path: Path, extra: str, message: str) -> None:
    path = _write(tmp_path, MINIMAL + extra + "\n")
    assert _messages(path) == [f"{path}:{message}"]


def test_a_file_that_is_not_a_mapping(tmp_path: Path) -> None:
    path = _write(tmp_path, "- inventory\n")
    assert _messages(path) == [
        f"{path}:1:1: must be a mapping of settings (inventory:, poll:, ...), got a list"
    ]
    empty = _write(tmp_path, "", "empty.yaml")
    assert _messages(empty) == [
        f"{empty}: must be a mapping of settings (inventory:, poll:, ...), got an empty file"
    ]


def test_syntax_error_in_config(tmp_path: Path) -> None:
    path = _write(tmp_path, MINIMAL + "poll: {interval_s: 5\n")
    assert _messages(path) == [
        f"{path}:4:1: invalid YAML: did not find expected ',' or '}}' "
        "(while parsing a flow mapping at line 3)"
    ]


def test_metrics_may_not_be_empty(tmp_path: Path) -> None:
    path = _write(tmp_path, MINIMAL + "poll:\n  metrics: []\n")
    assert _messages(path) == [
        f"{path}:4:12: poll.metrics: must be a list of strings with at least 1 item, "
        "got an empty list"
    ]
