"""docs/deploy.md stays true to the unit and to the config the daemon accepts."""

from __future__ import annotations

import json
import re
from pathlib import Path

from cdnops.commands import SilenceRequest, parse
from cdnops.config.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "deploy.md"
UNIT = ROOT / "systemd" / "cdnops.service"


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", DOC.read_text(), re.DOTALL)


def test_documented_config_is_accepted(tmp_path: Path) -> None:
    config_text = _blocks("yaml")[0]
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text((ROOT / "inventory.example.yaml").read_text())
    config = tmp_path / "cdnops.yaml"
    config.write_text(config_text.replace("/etc/cdnops/inventory.yaml", str(inventory)))
    settings = load_settings(config)
    assert settings.state_dir == Path("/var/lib/cdnops")
    assert settings.appliance_token.file == Path("/run/credentials/cdnops.service/appliance-token")


def test_doc_paths_match_the_unit() -> None:
    unit = UNIT.read_text()
    doc = DOC.read_text()
    exec_start = re.search(r"^ExecStart=(\S+) run --config (\S+)$", unit, re.MULTILINE)
    assert exec_start
    credential = re.search(r"^LoadCredential=([\w-]+):(\S+)$", unit, re.MULTILINE)
    assert credential
    for path in (
        exec_start.group(1),
        exec_start.group(2),
        credential.group(2),
        f"/run/credentials/cdnops.service/{credential.group(1)}",
    ):
        assert path in doc, path


def test_drop_in_examples_are_service_sections() -> None:
    network, credential = _blocks("ini")
    lines = [line for line in network.splitlines() if line and not line.startswith("#")]
    assert lines[0] == "[Service]"
    assert all(line.startswith("IPAddressAllow=") for line in lines[1:])
    assert credential.splitlines() == [
        "[Service]",
        "LoadCredential=api-token:/etc/cdnops/credentials/api-token",
    ]


def test_documented_api_token_is_where_the_credential_lands(tmp_path: Path) -> None:
    base = _blocks("yaml")[0].replace("/etc/cdnops/inventory.yaml", str(tmp_path / "inv.yaml"))
    (tmp_path / "inv.yaml").write_text((ROOT / "inventory.example.yaml").read_text())
    config = tmp_path / "cdnops.yaml"
    config.write_text(base + _blocks("yaml")[1])
    write_token = load_settings(config).api.write_token
    assert write_token is not None
    assert write_token.file == Path("/run/credentials/cdnops.service/api-token")


def test_documented_silence_request_is_valid() -> None:
    (body,) = re.findall(r"-d '(\{.*?\})'", DOC.read_text())
    request = parse(SilenceRequest, json.loads(body))
    assert request.site == "sea01"
    assert request.by == "ana"
