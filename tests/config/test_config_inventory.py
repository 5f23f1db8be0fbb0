"""The inventory file: entries into `Appliance`s in file order, every problem reported."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from cdnops.config.inventory import load_inventory
from cdnops.errors import ConfigError
from cdnops.model import Appliance, HealthFormat

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def _messages(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_inventory(path)
    return [str(i) for i in info.value.issues]


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "inventory.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def test_valid_inventory() -> None:
    inventory = load_inventory(FIXTURES / "inventory.yaml", HealthFormat.JSON)
    assert inventory.appliances == (
        Appliance(
            "sea01-oca-001",
            "sea01",
            "http://127.0.0.1:9100/a/sea01-oca-001",  # trailing slash dropped
            {"region": "us-west", "model": "storage-v3"},
            HealthFormat.JSON,
        ),
        Appliance(
            "ams02-oca-001", "ams02", "https://edge.example.net:8443", {}, HealthFormat.PROMETHEUS
        ),
    )


def test_default_format_applies_to_entries_without_one() -> None:
    inventory = load_inventory(FIXTURES / "inventory.yaml", HealthFormat.PROMETHEUS)
    assert [a.health_format for a in inventory.appliances] == [HealthFormat.PROMETHEUS] * 2


def test_every_problem_is_reported_at_its_place() -> None:
    path = FIXTURES / "bad_inventory.yaml"
    name_rule = "must be 1 to 64 characters from A-Z a-z 0-9 _ . -"
    assert _messages(path) == [
        f'{path}:5:9: appliances[1].id: {name_rule}, got "sea01 oca 002"',
        f"{path}:7:10: appliances[1].url: must be an http:// or https:// URL with a host, "
        'got "ftp://127.0.0.1/a"',
        f'{path}:8:9: appliances[2].id: duplicate id "sea01-oca-001": first at line 2, '
        "again at line 8",
        f"{path}:11:20: appliances[2].labels.rack: must be a string, got 12 "
        "(put it in quotes to keep it as text)",
        f"{path}:12:5: appliances[3].id: required key is missing (expected a string)",
        f"{path}:13:10: appliances[3].url: must be an http:// or https:// URL with a host, "
        'got "http:///nohost"',
        f'{path}:14:13: appliances[3].format: must be one of json, prometheus, got "xml"',
        f"{path}:15:5: appliances[3].colour: unknown key (valid keys here: id, site, url, "
        "labels, format)",
    ]


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://h:99999/x", 'must be a valid http:// or https:// URL, got "http://h:99999/x"'),
        ("http://h/x?a=1", 'must be a base URL without ?query or #fragment, got "http://h/x?a=1"'),
        ("http://u:pw@h/x", "must not contain a user or password (the token is sent as a header)"),
        ("127.0.0.1:9100", 'must be an http:// or https:// URL with a host, got "127.0.0.1:9100"'),
    ],
)
def test_bad_urls(tmp_path: Path, url: str, message: str) -> None:
    path = _write(tmp_path, f"appliances:\n  - {{id: a, site: s, url: '{url}'}}\n")
    assert _messages(path) == [f"{path}:2:27: appliances[0].url: {message}"]


def test_id_too_long_and_duplicate_key_in_an_entry(tmp_path: Path) -> None:
    long_id = "a" * 65
    path = _write(
        tmp_path,
        f"""\
        appliances:
          - id: {long_id}
            site: s
            site: t
            url: http://h
        """,
    )
    assert _messages(path) == [
        f"{path}:2:9: appliances[0].id: must be 1 to 64 characters from A-Z a-z 0-9 _ . -, "
        f'got "{long_id[:57]}..."',
        f'{path}:4:5: appliances[0].site: duplicate key "site": first at line 3, again at line 4 '
        "(only one may be given)",
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", ":0:0"),
        ("- a\n", ":1:1: must be a mapping with an appliances: list, got a list"),
        ("appliances:\n", ":1:12: appliances: must be a list of items, got an empty value"),
        ("fleet: []\n", ":1:1: appliances: required key is missing (expected a list of items)"),
    ],
)
def test_not_an_inventory(tmp_path: Path, text: str, message: str) -> None:
    path = _write(tmp_path, text)
    messages = _messages(path)
    if message == ":0:0":
        assert messages == [
            f"{path}: must be a mapping with an appliances: list, got an empty file"
        ]
    else:
        assert messages[0] == f"{path}{message}"


def test_empty_fleet_is_valid(tmp_path: Path) -> None:
    assert load_inventory(_write(tmp_path, "appliances: []\n")).appliances == ()


def test_large_inventory_keeps_file_order(tmp_path: Path) -> None:
    lines = ["appliances:"]
    for i in range(2000):
        lines.append(
            f"  - {{id: a{i:05d}, site: s{i % 20}, url: 'http://127.0.0.1:9100/a/a{i:05d}'}}"
        )
    path = tmp_path / "inventory.yaml"
    path.write_text("\n".join(lines) + "\n")
    inventory = load_inventory(path)
    assert [a.id for a in inventory.appliances] == [f"a{i:05d}" for i in range(2000)]
    assert len(inventory.sites) == 20
