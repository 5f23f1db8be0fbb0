"""The `mqtt:` section: defaults, exact messages for bad values, secrets, TLS, backoff."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from cdnops.config.mqtt import MqttConfig
from cdnops.config.settings import load_settings
from cdnops.errors import ConfigError
from cdnops.mqtt.connection import Connection
from cdnops.mqtt.outbox import Outbox
from cdnops.mqtt.publisher import Publisher
from cdnops.mqtt.topics import Topics
from cdnops.store.db import Store

HEAD = "inventory: inventory.yaml\nappliance_token: {env: CDNOPS_TOKEN}\ninstance: edge-eu\n"


def load(tmp_path: Path, mqtt: str) -> MqttConfig:
    """The mqtt section of a config file holding `mqtt`."""
    path = tmp_path / "cdnops.yaml"
    path.write_text(HEAD + "mqtt:\n" + textwrap.indent(textwrap.dedent(mqtt), "  "))
    cfg = load_settings(path).mqtt
    assert cfg is not None
    return cfg


def messages(tmp_path: Path, mqtt: str) -> list[str]:
    """Every issue of a config file holding `mqtt`, as printed."""
    with pytest.raises(ConfigError) as info:
        load(tmp_path, mqtt)
    return [str(i).split(": ", 1)[1] for i in info.value.issues]


def test_defaults_derive_from_the_instance(tmp_path: Path) -> None:
    cfg = load(tmp_path, "host: broker.example\n")
    assert cfg.prefix("edge-eu") == "cdnops/edge-eu"
    assert cfg.identifier("edge-eu") == "cdnops-edge-eu"
    assert (cfg.port, cfg.keepalive_s, cfg.outbox_max_events) == (1883, 30, 100_000)
    assert (cfg.backoff_min_s, cfg.backoff_max_s) == (0.5, 30.0)
    assert cfg.commands_enabled is False  # commands are opt-in
    assert cfg.tls is None


def test_tls_files_are_taken_from_the_config_folder(tmp_path: Path) -> None:
    cfg = load(tmp_path, "tls: {ca_file: ca.pem}\n")
    assert cfg.tls is not None
    assert cfg.tls.ca_file == tmp_path / "ca.pem"


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        ("topic_prefix: 'a/#'\n", "mqtt.topic_prefix: must be topic levels separated by /, "
         "none empty, without + # or NUL, got \"a/#\""),
        ("topic_prefix: 'a//b'\n", "mqtt.topic_prefix: must be topic levels separated by /, "
         "none empty, without + # or NUL, got \"a//b\""),
        ("topic_prefix: $SYS/x\n", "mqtt.topic_prefix: must not start with $ (topics the broker "
         "reserves), got \"$SYS/x\""),
        ("client_id: 'two words'\n", "mqtt.client_id: must be 1 to 64 characters from "
         "A-Z a-z 0-9 _ . -, got \"two words\""),
        ("backoff_min_s: 5\nbackoff_max_s: 1\n", "mqtt: backoff_max_s (1) must be at least "
         "backoff_min_s (5)"),
        ("password: {env: MQTT_PASSWORD}\n", "mqtt: password is given without a username"),
        ("tls: {cert_file: c.pem}\n", "mqtt.tls: give both cert_file and key_file for a client "
         "certificate, or neither"),
    ],
)  # fmt: skip
def test_bad_values_are_explained(tmp_path: Path, section: str, expected: str) -> None:
    assert expected in messages(tmp_path, section)


def test_a_literal_password_is_refused(tmp_path: Path) -> None:
    found = messages(tmp_path, "username: cdnops\npassword: hunter2\n")
    assert any("a literal token is not accepted" in m for m in found)
    assert not any("hunter2" in m for m in found)


def test_the_password_is_read_at_start_and_never_shown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = load(tmp_path, "username: cdnops\npassword: {env: MQTT_PASSWORD}\n")
    with pytest.raises(ConfigError, match="environment variable MQTT_PASSWORD is not set"):
        Connection.from_config(cfg, "edge-eu")
    monkeypatch.setenv("MQTT_PASSWORD", "s3cret-value")
    conn = Connection.from_config(cfg, "edge-eu")
    assert conn.password is not None
    assert conn.password.reveal() == "s3cret-value"
    assert "s3cret-value" not in repr(conn)


def test_an_unreadable_ca_file_stops_the_start(tmp_path: Path) -> None:
    cfg = load(tmp_path, "tls: {ca_file: missing.pem}\n")
    with pytest.raises(ConfigError, match=r"mqtt\.tls: cannot load"):
        Connection.from_config(cfg, "edge-eu")


@pytest.mark.parametrize(
    ("failures", "low", "high"), [(1, 0.5, 0.5), (3, 0.5, 2.0), (20, 0.5, 30.0)]
)
def test_backoff_is_capped_with_full_jitter(
    tmp_path: Path, failures: int, low: float, high: float
) -> None:
    cfg = MqttConfig(backoff_min_s=0.5, backoff_max_s=30.0)
    with Store(tmp_path / "s.db") as store:
        outbox = Outbox(store, Topics("cdnops/x"), "x")
        conn = Connection.from_config(cfg, "x")
        assert Publisher(conn, outbox, rng=lambda: 0.0).backoff_s(failures) == low
        assert Publisher(conn, outbox, rng=lambda: 1.0).backoff_s(failures) == high
