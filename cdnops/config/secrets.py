"""The appliance token: where it is read from, and a value that never prints."""

from __future__ import annotations

import hmac
import os
import re
from pathlib import Path
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    PrivateAttr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from cdnops.errors import ConfigError, Issue

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SHAPE = "{env: NAME} or {file: PATH}"


class Secret:
    """A token that shows as `Secret('***')` in repr, str, f-strings and logs."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The value itself: call this only where it is sent (the Authorization header)."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    __hash__ = None  # type: ignore[assignment]  # a hash would be a function of the value

    def __reduce__(self) -> Any:
        # pickling would write the value out in the clear; nothing needs it
        raise TypeError("a Secret cannot be pickled")


class SecretSource(BaseModel):
    """Where the token is read from: exactly one of an environment variable or a file.

    A literal token in the config is rejected, so config files can be shared and
    committed; `resolve()` reads the value when the daemon needs it.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    env: str | None = None
    file: Path | None = None

    # where this source was written (file, line, col), to point errors from resolve() at it
    _origin: tuple[str, int, int] = PrivateAttr(default=("", 0, 0))
    _key: str = PrivateAttr(default="appliance_token")

    @model_validator(mode="before")
    @classmethod
    def _reject_literal(cls, data: Any) -> Any:
        if isinstance(data, str | int | float):
            raise ValueError(
                "a literal token is not accepted: put the token in a file or an environment "
                f"variable and write {_SHAPE}"
            )
        if not isinstance(data, dict):
            raise ValueError(f"must be {_SHAPE}")
        return data

    @field_validator("env")
    @classmethod
    def _check_env(cls, value: str | None) -> str | None:
        if value is not None and not _ENV_NAME.fullmatch(value):
            raise ValueError(
                "must be an environment variable name (letters, digits and _, "
                "not starting with a digit)"
            )
        return value

    @field_validator("file")
    @classmethod
    def _resolve_file(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        return resolve_path(value, info) if value is not None else None

    @model_validator(mode="after")
    def _exactly_one(self) -> SecretSource:
        if (self.env is None) == (self.file is None):
            raise ValueError(f"give exactly one of env or file: {_SHAPE}")
        return self

    def located(self, file: str, line: int, col: int, key: str) -> SecretSource:
        """Record where this source is written, so `resolve()` errors point at it."""
        self._origin = (file, line, col)
        self._key = key
        return self

    def describe(self) -> str:
        """`environment variable NAME` or `file PATH`, for messages (never the value)."""
        return f"environment variable {self.env}" if self.env else f"file {self.file}"

    def resolve(self) -> Secret:
        """Read the token, stripped of surrounding whitespace.

        Raises:
            ConfigError: the variable is unset or empty, or the file is unreadable or empty.
                The message names the variable or file, never the value.
        """
        if self.env is not None:
            raw = os.environ.get(self.env)
            if raw is None:
                raise self._error("env", f"environment variable {self.env} is not set")
        else:
            raw = self._read_file()
        value = raw.strip()
        if not value:
            raise self._error("env" if self.env else "file", f"{self.describe()} is empty")
        return Secret(value)

    def _read_file(self) -> str:
        assert self.file is not None  # guaranteed by _exactly_one
        try:
            raw = self.file.read_bytes()
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise self._error("file", f"cannot read token file {self.file}: {reason}") from None
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            # `from None`: the decode error quotes a byte of the token
            raise self._error("file", f"token file {self.file} is not UTF-8 text") from None

    def _error(self, key: str, message: str) -> ConfigError:
        file, line, col = self._origin
        return ConfigError([Issue(file or "<config>", line, col, f"{self._key}.{key}", message)])


def resolve_path(value: Path, info: ValidationInfo) -> Path:
    """A relative path is taken from the folder of the file it is written in."""
    base = info.context.get("base_dir") if isinstance(info.context, dict) else None
    if value.is_absolute() or not isinstance(base, Path):
        return value
    return base / value
