"""The API's write token: `Authorization: Bearer <token>` on every write, checked in constant
time; without a configured token every write is refused (secure by default)."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from cdnops.config.secrets import Secret

NOT_CONFIGURED = (
    "writes are disabled: this daemon has no api.write_token; set it in the config to "
    "{env: NAME} or {file: PATH} (the token itself never goes in the config) and restart "
    "or reload the daemon"
)
MISSING = (
    "this request changes the daemon's state and needs an Authorization: Bearer <token> header"
)
INVALID = "the bearer token is not valid"


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a write is refused: the HTTP status, the message, and the WWW-Authenticate value."""

    status: int
    message: str
    challenge: str | None = None


class WriteAuth:
    """Holds the write token (swappable on reload) and judges `Authorization` headers.

    The token is kept only as its SHA-256 digest: comparing digests takes the same time
    whatever the length of the token sent, and the value never sits in a loggable string.
    """

    def __init__(self, token: Secret | None) -> None:
        self._digest: bytes | None = None
        self.set_token(token)

    @property
    def configured(self) -> bool:
        """Whether writes can be authorized at all."""
        return self._digest is not None

    def set_token(self, token: Secret | None) -> None:
        """Use `token` from now on (None: refuse every write)."""
        self._digest = None if token is None else _digest(token.reveal())

    def check(self, authorization: str | None) -> Refusal | None:
        """None when the header carries the right token; else why not."""
        if self._digest is None:
            return Refusal(403, NOT_CONFIGURED)
        scheme, _, given = (authorization or "").strip().partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            return Refusal(401, MISSING, 'Bearer realm="cdnops"')
        if not hmac.compare_digest(_digest(given.strip()), self._digest):
            return Refusal(401, INVALID, 'Bearer realm="cdnops", error="invalid_token"')
        return None


def _digest(value: str) -> bytes:
    return hashlib.sha256(value.encode("utf-8", "surrogateescape")).digest()
