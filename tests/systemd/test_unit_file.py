"""systemd/cdnops.service: what the daemon relies on, `verify` clean, exposure <= 1.5."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parents[2] / "systemd" / "cdnops.service"
INSTALLED_BINARY = "/opt/cdnops/venv/bin/cdnops"
MAX_EXPOSURE = 1.5

needs_analyze = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed"
)


def _settings() -> dict[str, list[str]]:
    """Key -> every value it is given in the unit (keys may repeat)."""
    found: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.startswith(("#", ";", "[")):
            key, value = line.split("=", 1)
            found.setdefault(key.strip(), []).append(value.strip())
    return found


def _analyze(*args: str) -> subprocess.CompletedProcess[str]:
    analyze = shutil.which("systemd-analyze")
    assert analyze is not None
    return subprocess.run([analyze, *args], capture_output=True, text=True, timeout=30, check=False)


def _exposure(unit: Path) -> float:
    result = _analyze("security", "--offline=yes", "--no-pager", str(unit))
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    assert match, f"no exposure line in:\n{result.stdout}\n{result.stderr}"
    return float(match.group(1))


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("Type", "notify"),
        ("NotifyAccess", "main"),
        ("WatchdogSec", "30s"),
        ("ExecStart", f"{INSTALLED_BINARY} run --config /etc/cdnops/cdnops.yaml"),
        ("ExecReload", "/bin/kill -HUP $MAINPID"),
        ("Restart", "on-failure"),
        ("DynamicUser", "yes"),
        ("StateDirectory", "cdnops"),
        ("ConfigurationDirectory", "cdnops"),
        ("LoadCredential", "appliance-token:/etc/cdnops/credentials/appliance-token"),
        ("IPAddressDeny", "any"),
        ("IPAddressAllow", "localhost"),
    ],
)
def test_unit_sets(key: str, value: str) -> None:
    assert _settings().get(key) == [value]


def test_stop_timeout_is_above_the_default_shutdown_grace() -> None:
    (timeout,) = _settings()["TimeoutStopSec"]
    assert timeout.endswith("s")
    assert float(timeout[:-1]) > 10  # shutdown_grace_s defaults to 10


@needs_analyze
def test_verify_prints_nothing(tmp_path: Path) -> None:
    # verify insists that ExecStart's binary exists; the install path only exists on a
    # deployed host, so check a copy that differs in nothing but that path
    text = UNIT.read_text()
    assert text.count(INSTALLED_BINARY) == 1
    copy = tmp_path / UNIT.name
    copy.write_text(text.replace(INSTALLED_BINARY, sys.executable))
    result = _analyze("verify", str(copy))
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


@needs_analyze
def test_exposure_is_at_most_1_5() -> None:
    assert _exposure(UNIT) <= MAX_EXPOSURE


@needs_analyze
def test_widening_ip_allow_as_documented_keeps_exposure(tmp_path: Path) -> None:
    # docs/deploy.md has the SRE add the fleet's networks; the unit must stay within bounds
    copy = tmp_path / UNIT.name
    copy.write_text(
        UNIT.read_text().replace(
            "IPAddressAllow=localhost", "IPAddressAllow=localhost 10.20.0.0/16 192.0.2.0/24"
        )
    )
    assert _exposure(copy) <= MAX_EXPOSURE
