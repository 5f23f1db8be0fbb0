"""`cdnops validate` as a real subprocess: exit codes, stdout summaries, stderr issues."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).resolve().parent / "fixtures"
ENV = "CDNOPS_TEST_VALIDATE_TOKEN"


def _validate(
    *args: str | Path, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k != ENV}
    environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), environ.get("PYTHONPATH")]))
    environ.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "cdnops", "validate", *map(str, args)],
        cwd=cwd,
        env=environ,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def _config(folder: Path, inventory: str = "inventory.yaml") -> Path:
    path = folder / "cdnops.yaml"
    path.write_text(f"inventory: {inventory}\nappliance_token: {{env: {ENV}}}\n")
    return path


def test_good_files_and_an_unset_token_warning(tmp_path: Path) -> None:
    shutil.copy(FIXTURES / "inventory.yaml", tmp_path / "inventory.yaml")
    _config(tmp_path)
    done = _validate("cdnops.yaml", "inventory.yaml", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "ok: cdnops.yaml (config, 2 appliances)",
        "ok: inventory.yaml (inventory, 2 appliances)",
    ]
    assert done.stderr.splitlines() == [
        f"cdnops.yaml:2:24: warning: appliance_token.env: environment variable {ENV} is not set"
    ]

    done = _validate("cdnops.yaml", cwd=tmp_path, env={ENV: "t0ken"})
    assert (done.returncode, done.stderr) == (0, "")

    done = _validate("--require-token", "cdnops.yaml", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.splitlines() == [
        f"cdnops.yaml:2:24: appliance_token.env: environment variable {ENV} is not set"
    ]


def test_bad_files_are_all_reported_with_exit_2(tmp_path: Path) -> None:
    (tmp_path / "conf").mkdir()
    bad_inventory = shutil.copy(FIXTURES / "bad_inventory.yaml", tmp_path / "conf" / "inv.yaml")
    _config(tmp_path / "conf", inventory="inv.yaml")
    (tmp_path / "notes.yaml").write_text("title: hello\n")
    (tmp_path / "broken.yaml").write_text("poll: {interval_s: 5\n")
    shutil.copy(FIXTURES / "inventory.yaml", tmp_path / "good.yaml")
    done = _validate(
        "conf/cdnops.yaml", "notes.yaml", "missing.yaml", "broken.yaml", "good.yaml", cwd=tmp_path
    )
    assert done.returncode == 2
    assert done.stdout.splitlines() == ["ok: good.yaml (inventory, 2 appliances)"]
    errors = done.stderr.splitlines()
    # a config's inventory is checked too, and its issues name the inventory file
    inventory_errors = [e for e in errors if e.startswith(str(tmp_path / "conf" / "inv.yaml"))]
    assert len(inventory_errors) == 8
    assert inventory_errors[2] == (
        f'{bad_inventory}:8:9: appliances[2].id: duplicate id "sea01-oca-001": '
        "first at line 2, again at line 8"
    )
    assert errors[8:] == [
        "notes.yaml: cannot tell what kind of file this is (no known top-level key): "
        "expected an inventory (appliances:) or a config "
        "(inventory:, appliance_token:, poll:, ...) or playbooks (steps: or playbooks:)",
        "missing.yaml: cannot read file: No such file or directory",
        "broken.yaml:2:1: invalid YAML: did not find expected ',' or '}' "
        "(while parsing a flow mapping at line 1)",
    ]


def test_config_errors_use_the_config_path_as_given(tmp_path: Path) -> None:
    config = tmp_path / "cdnops.yaml"
    config.write_text(
        textwrap.dedent(
            """\
            inventory: inventory.yaml
            appliance_token: s3cr3t-value
            poll:
              interval_s: 5m
            """
        )
    )
    done = _validate("cdnops.yaml", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "cdnops.yaml:2:18: appliance_token: a literal token is not accepted: put the token in a "
        "file or an environment variable and write {env: NAME} or {file: PATH}",
        'cdnops.yaml:4:15: poll.interval_s: must be a number > 0, got "5m"',
    ]
    assert "s3cr3t-value" not in done.stderr + done.stdout


def test_usage_error_without_files(tmp_path: Path) -> None:
    done = _validate(cwd=tmp_path)
    assert done.returncode == 2
    assert "the following arguments are required: FILE" in done.stderr


def test_missing_inventory_and_loose_token_file(tmp_path: Path) -> None:
    shutil.copy(FIXTURES / "inventory.yaml", tmp_path / "inventory.yaml")
    token = tmp_path / "token"
    token.write_text("t0ken\n")
    token.chmod(0o644)
    (tmp_path / "a.yaml").write_text("inventory: inventory.yaml\nappliance_token: {file: token}\n")
    (tmp_path / "b.yaml").write_text("inventory: fleet.yaml\nappliance_token: {file: token}\n")
    done = _validate("a.yaml", "b.yaml", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stdout.splitlines() == ["ok: a.yaml (config, 2 appliances)"]
    assert done.stderr.splitlines() == [
        f"a.yaml:2:25: warning: appliance_token.file: token file {token} is open to other "
        "users (mode 644); make it readable by the daemon's user only (chmod 600)",
        f"b.yaml:1:12: inventory: {tmp_path / 'fleet.yaml'}: cannot read file: "
        "No such file or directory",
    ]
