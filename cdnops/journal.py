"""A logging handler speaking journald's native protocol, with structured fields."""

from __future__ import annotations

import array
import errno
import fcntl
import logging
import os
import re
import socket
import struct
import sys
from collections.abc import Mapping
from typing import TextIO

JOURNAL_SOCKET = "/run/systemd/journal/socket"

# syslog priorities, as journalctl -p reads them
_PRIORITY = {
    logging.DEBUG: 7,
    logging.INFO: 6,
    logging.WARNING: 4,
    logging.ERROR: 3,
    logging.CRITICAL: 2,
}
# `key=value` or `key="quoted value"` inside a message, as logfmt writes them
_PAIR = re.compile(r'(?<![\w.])([A-Za-z][A-Za-z0-9_]{0,63})=("(?:[^"\\]|\\.)*"|[^\s"]+)')
# values that must never reach the journal, whatever the key is called
_SECRET_WORDS = r"token|secret|passw|authorization|api_?key|credential"
_SECRET_KEY = re.compile(_SECRET_WORDS, re.IGNORECASE)
# a secret-looking pair anywhere, also inside a quoted logfmt value (`msg="... token=x"`);
# bounded key parts keep the scan linear on long words
_SECRET_PAIR = re.compile(
    rf"(?<![\w.-])([\w.-]{{0,40}}(?:{_SECRET_WORDS})[\w.-]{{0,40}})="
    r'(\\"(?:[^\\]|\\[^"])*?\\"|"(?:[^"\\]|\\.)*"|[^\s"\\]+)',
    re.IGNORECASE,
)
_BEARER = re.compile(r"(Bearer\s+)\S+", re.IGNORECASE)
# fields the handler sets itself; a key=value pair of the same name does not replace them
_OWN = frozenset(
    {"MESSAGE", "PRIORITY", "SYSLOG_IDENTIFIER", "CODE_FILE", "CODE_LINE", "CODE_FUNC", "LOGGER"}
)
_REDACTED = "***"


def redact(text: str) -> str:
    """`token=abc` -> `token=***`, `Bearer abc` -> `Bearer ***`: a last line of defence."""
    text = _BEARER.sub(r"\g<1>" + _REDACTED, text)
    return _SECRET_PAIR.sub(lambda m: f"{m.group(1)}={_REDACTED}", text)


def message_fields(message: str) -> dict[str, str]:
    """Journal fields from the message's `key=value` pairs (keys upper-cased, secrets hidden)."""
    fields: dict[str, str] = {}
    for key, raw in _PAIR.findall(message):
        name = key.upper()
        if name in _OWN:
            continue
        value = raw[1:-1].replace('\\"', '"').replace("\\\\", "\\") if raw[:1] == '"' else raw
        fields[name] = _REDACTED if _SECRET_KEY.search(key) else value
    return fields


def encode_fields(fields: Mapping[str, str]) -> bytes:
    """The native protocol: `KEY=value\\n`, or a length-prefixed value when it has a newline."""
    out = bytearray()
    for key, value in fields.items():
        data = value.encode("utf-8", "replace")
        if b"\n" in data:
            out += key.encode() + b"\n" + struct.pack("<Q", len(data)) + data + b"\n"
        else:
            out += key.encode() + b"=" + data + b"\n"
    return bytes(out)


def stream_is_journal(stream: TextIO, environ: Mapping[str, str] | None = None) -> bool:
    """Whether `stream` is the journal stream systemd connected (`$JOURNAL_STREAM` dev:ino)."""
    env = os.environ if environ is None else environ
    dev_ino = env.get("JOURNAL_STREAM", "")
    try:
        st = os.fstat(stream.fileno())
    except (OSError, ValueError):
        return False
    return dev_ino == f"{st.st_dev}:{st.st_ino}"


class JournalHandler(logging.Handler):
    """Sends each record to journald as one native-protocol datagram.

    Fields: MESSAGE (with the traceback, if any), PRIORITY, SYSLOG_IDENTIFIER, CODE_FILE,
    CODE_LINE, CODE_FUNC, LOGGER, plus one field per `key=value` pair in the message.
    Secret-looking values are replaced by `***`. When the journal socket is missing,
    busy or refuses a record, that record goes to the fallback stream as a formatted line
    instead: a log line is never lost silently and never blocks the event loop.

    Args:
        socket_path: journald's native socket.
        identifier: SYSLOG_IDENTIFIER, what `journalctl -t` selects on.
        fallback: where records go when the journal cannot take them (stdout by default),
            formatted by the handler's formatter (set one, e.g. `LogfmtFormatter`).
    """

    def __init__(
        self,
        socket_path: str = JOURNAL_SOCKET,
        *,
        identifier: str = "cdnops",
        fallback: TextIO | None = None,
    ) -> None:
        super().__init__()
        self.socket_path = socket_path
        self.identifier = identifier
        self.fallback = fallback
        self.fallbacks = 0
        self._sock: socket.socket | None = None

    def fields(self, record: logging.LogRecord) -> dict[str, str]:
        """The journal fields of one record."""
        message = record.getMessage()
        text = message
        if record.exc_info:
            text = f"{message}\n{logging.Formatter().formatException(record.exc_info)}"
        fields = {
            "MESSAGE": redact(text),
            "PRIORITY": str(_PRIORITY.get(record.levelno, 6)),
            "SYSLOG_IDENTIFIER": self.identifier,
            "CODE_FILE": record.pathname,
            "CODE_LINE": str(record.lineno),
            "CODE_FUNC": record.funcName,
            "LOGGER": record.name,
        }
        fields.update(message_fields(message))
        return fields

    def emit(self, record: logging.LogRecord) -> None:
        """Send the record; on any socket trouble, write it to the fallback stream."""
        try:
            payload = encode_fields(self.fields(record))
        except Exception:
            self.handleError(record)
            return
        try:
            self._send(payload)
        except OSError:
            self._fall_back(record)

    def _send(self, payload: bytes) -> None:
        if self._sock is None:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.setblocking(False)
        try:
            self._sock.sendto(payload, self.socket_path)
        except OSError as exc:
            if exc.errno not in (errno.EMSGSIZE, errno.ENOBUFS):
                raise
            self._send_memfd(payload)

    def _send_memfd(self, payload: bytes) -> None:
        """Too big for one datagram: pass a sealed memfd holding it, as journald accepts."""
        assert self._sock is not None
        fd = os.memfd_create("cdnops-journal", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        try:
            os.write(fd, payload)
            seals = fcntl.F_SEAL_SEAL | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE
            fcntl.fcntl(fd, fcntl.F_ADD_SEALS, seals)
            # socket.send_fds ignores its address before Python 3.12: build the message here
            rights = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [fd]))]
            self._sock.sendmsg([], rights, 0, self.socket_path)
        finally:
            os.close(fd)

    def _fall_back(self, record: logging.LogRecord) -> None:
        self.fallbacks += 1
        try:
            stream = self.fallback or sys.stdout
            stream.write(redact(self.format(record)) + "\n")
            stream.flush()
        except Exception:
            self.handleError(record)

    def close(self) -> None:
        """Release the socket."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        super().close()
