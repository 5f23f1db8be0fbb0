"""Log output: key=value lines on stdout, journald-friendly when run under systemd."""

from __future__ import annotations

import logging
import os
import sys
import time
from typing import Literal, TextIO

from cdnops.journal import JournalHandler

LogFormat = Literal["auto", "logfmt", "journald"]

# syslog priorities, which journald reads from a `<N>` line prefix.
_PRIORITY = {
    logging.DEBUG: 7,
    logging.INFO: 6,
    logging.WARNING: 4,
    logging.ERROR: 3,
    logging.CRITICAL: 2,
}


def _quote(value: str) -> str:
    if value and not any(c in value for c in ' "=\n\t'):
        return value
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


class LogfmtFormatter(logging.Formatter):
    """`ts=... level=info logger=cdnops.poll msg="..."`, plus the exception if any.

    Under journald the timestamp is dropped (journald stamps every line) and the
    syslog priority is given as a `<N>` prefix so `journalctl -p warning` works.
    """

    def __init__(self, *, journald: bool) -> None:
        super().__init__()
        self.journald = journald

    def format(self, record: logging.LogRecord) -> str:
        parts = []
        if self.journald:
            prefix = f"<{_PRIORITY.get(record.levelno, 6)}>"
        else:
            prefix = ""
            ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            parts.append(f"ts={ts}.{int(record.msecs):03d}Z")
        parts.append(f"level={record.levelname.lower()}")
        parts.append(f"logger={record.name}")
        parts.append(f"msg={_quote(record.getMessage())}")
        if record.exc_info:
            parts.append(f"exc={_quote(self.formatException(record.exc_info))}")
        return prefix + " ".join(parts)


def setup_logging(
    level: str = "info", fmt: LogFormat = "auto", stream: TextIO | None = None
) -> None:
    """Route every `cdnops.*` logger to one stdout handler; safe to call again on reload."""
    journald = fmt == "journald" or (fmt == "auto" and "JOURNAL_STREAM" in os.environ)
    out = stream or sys.stdout
    # under systemd: native journal fields; records the journal refuses still reach stdout
    handler: logging.Handler = (
        JournalHandler(fallback=out) if journald else logging.StreamHandler(out)
    )
    handler.setFormatter(LogfmtFormatter(journald=journald))
    root = logging.getLogger("cdnops")
    for old in list(root.handlers):
        root.removeHandler(old)
        old.close()  # a JournalHandler holds a socket; one per reload would leak
    root.addHandler(handler)
    root.setLevel(level.upper())
    root.propagate = False
