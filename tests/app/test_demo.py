"""`cdnops demo` as a newcomer runs it: a real subprocess, stopped after a few seconds."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path


def demo(workdir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`cdnops demo` with 20 appliances in 2 sites on a free port, as a subprocess; the
    appliance token is left for the demo to make."""
    env = {k: v for k, v in os.environ.items() if k != "CDNOPS_APPLIANCE_TOKEN"}
    return subprocess.run(
        [sys.executable, "-m", "cdnops", "demo", "--appliances", "20", "--sites", "2",
         "--http-port", "0", "--workdir", str(workdir), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )  # fmt: skip


def test_demo_polls_and_says_where_to_look(tmp_path: Path) -> None:
    proc = demo(tmp_path, "--no-faults", "--duration", "5")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "cdnops demo: 20 simulated appliances" in proc.stdout
    assert "daemon metrics:      curl http://127.0.0.1:" in proc.stdout
    # the first tick may be partial (the demo starts mid-interval); a later one is complete
    assert re.search(r"tick seq=\d+ ok=20 failed=0 ", proc.stdout), proc.stdout
    assert "stopped cleanly" in proc.stdout
    # run from the source tree, the demo remediates with the shipped playbooks
    m = re.search(r"remediation: (\d+) playbooks from \S+/playbooks", proc.stdout)
    assert m, proc.stdout
    assert int(m.group(1)) > 0
    assert (tmp_path / "cdnops.yaml").is_file()
    # the API is on, its write token in a private file the guide points at (never printed)
    token = (tmp_path / "api-token").read_text().strip()
    assert len(token) >= 24
    assert (tmp_path / "api-token").stat().st_mode & 0o077 == 0
    assert token not in proc.stdout + proc.stderr
    assert f"cat {tmp_path / 'api-token'}" in proc.stdout
    assert "/api/v1/silences" in proc.stdout
    assert (tmp_path / "inventory.yaml").is_file()


def test_demo_scenario_needs_the_default_fleet(tmp_path: Path) -> None:
    proc = demo(tmp_path, "--duration", "1")
    assert proc.returncode == 2
    assert "unknown appliance or site" in proc.stderr
    assert "try --no-faults" in proc.stderr
