"""The appliance token: env or file sources, literal rejection, and a value that never shows."""

from __future__ import annotations

import logging
import pickle
import traceback
from pathlib import Path

import pytest

from cdnops.config.secrets import Secret
from cdnops.config.settings import load_settings
from cdnops.errors import ConfigError

TOKEN = "tok-5f1e9c2a-never-show-me"
ENV = "CDNOPS_TEST_APPLIANCE_TOKEN"


def _config(tmp_path: Path, token_yaml: str) -> Path:
    path = tmp_path / "cdnops.yaml"
    path.write_text(f"inventory: inventory.yaml\nappliance_token: {token_yaml}\n")
    return path


def _error(path: Path) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    return info.value


def test_token_from_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV, f"  {TOKEN}\n")
    settings = load_settings(_config(tmp_path, f"{{env: {ENV}}}"))
    assert settings.appliance_token.resolve().reveal() == TOKEN


def test_token_from_file_relative_to_the_config(tmp_path: Path) -> None:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "token").write_text(TOKEN + "\n")
    settings = load_settings(_config(tmp_path, "{file: secrets/token}"))
    assert settings.appliance_token.resolve().reveal() == TOKEN


def test_literal_token_is_rejected_without_echoing_it(tmp_path: Path) -> None:
    path = _config(tmp_path, TOKEN)
    error = _error(path)
    assert [str(i) for i in error.issues] == [
        f"{path}:2:18: appliance_token: a literal token is not accepted: put the token in a "
        "file or an environment variable and write {env: NAME} or {file: PATH}"
    ]
    shown = "".join(traceback.format_exception(error))
    assert TOKEN not in shown
    assert TOKEN not in repr(error)


def test_unknown_key_next_to_the_token_does_not_echo_it(tmp_path: Path) -> None:
    path = _config(tmp_path, f"{{value: {TOKEN}}}")
    error = _error(path)
    assert TOKEN not in "".join(traceback.format_exception(error))
    assert [i.path for i in error.issues] == ["appliance_token.value"]


@pytest.mark.parametrize(
    ("token_yaml", "message"),
    [
        (
            "{env: A, file: b}",
            "2:18: appliance_token: give exactly one of env or file: {env: NAME} or {file: PATH}",
        ),
        (
            "{}",
            "2:18: appliance_token: give exactly one of env or file: {env: NAME} or {file: PATH}",
        ),
        (
            "{env: 'not a name'}",
            "2:24: appliance_token.env: must be an environment variable name "
            "(letters, digits and _, not starting with a digit)",
        ),
        ("[a, b]", "2:18: appliance_token: must be {env: NAME} or {file: PATH}"),
    ],
)
def test_bad_token_sources(tmp_path: Path, token_yaml: str, message: str) -> None:
    path = _config(tmp_path, token_yaml)
    assert [str(i) for i in _error(path).issues] == [f"{path}:{message}"]


def test_unset_env_names_the_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV, raising=False)
    path = _config(tmp_path, f"{{env: {ENV}}}")
    with pytest.raises(ConfigError) as info:
        load_settings(path).appliance_token.resolve()
    assert (
        str(info.value)
        == f"{path}:2:24: appliance_token.env: environment variable {ENV} is not set"
    )


def test_empty_env_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV, "  \n")
    path = _config(tmp_path, f"{{env: {ENV}}}")
    with pytest.raises(ConfigError) as info:
        load_settings(path).appliance_token.resolve()
    assert (
        str(info.value) == f"{path}:2:24: appliance_token.env: environment variable {ENV} is empty"
    )


def test_missing_or_empty_file_names_the_file(tmp_path: Path) -> None:
    path = _config(tmp_path, "{file: token}")
    source = load_settings(path).appliance_token
    with pytest.raises(ConfigError) as info:
        source.resolve()
    assert str(info.value) == (
        f"{path}:2:25: appliance_token.file: cannot read token file {tmp_path / 'token'}: "
        "No such file or directory"
    )
    (tmp_path / "token").write_text("\n")
    with pytest.raises(ConfigError) as info:
        source.resolve()
    assert (
        str(info.value) == f"{path}:2:25: appliance_token.file: file {tmp_path / 'token'} is empty"
    )


def test_undecodable_file_does_not_quote_its_bytes(tmp_path: Path) -> None:
    (tmp_path / "token").write_bytes(b"\xfe\xedZQXW")
    source = load_settings(_config(tmp_path, "{file: token}")).appliance_token
    with pytest.raises(ConfigError) as info:
        source.resolve()
    shown = "".join(traceback.format_exception(info.value))
    assert "is not UTF-8 text" in shown
    assert "0xfe" not in shown
    assert "ZQXW" not in shown


def test_secret_never_shows_its_value(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv(ENV, TOKEN)
    settings = load_settings(_config(tmp_path, f"{{env: {ENV}}}"))
    secret = settings.appliance_token.resolve()
    assert repr(secret) == str(secret) == f"{secret}" == "Secret('***')"
    assert f"{secret!r:>20}".strip() == "Secret('***')"
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("cdnops.test").info("token=%s %r settings=%s", secret, secret, settings)
        logging.getLogger("cdnops.test").info("in a dict: %s", {"token": secret})
    assert "Secret('***')" in caplog.text
    assert TOKEN not in caplog.text
    assert TOKEN not in repr(settings)
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(secret)


def test_secrets_compare_by_value() -> None:
    assert Secret("a") == Secret("a")
    assert Secret("a") != Secret("b")
    assert Secret("a") != "a"
