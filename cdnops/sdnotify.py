"""A dependency-free sd_notify client: readiness, status, reload, stop and watchdog pings."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Mapping
from typing import NoReturn

log = logging.getLogger("cdnops.sdnotify")


def _address(raw: str) -> str | bytes:
    """`@name` is Linux's abstract namespace, spelled with a leading NUL on the wire."""
    if raw.startswith("@"):
        return b"\0" + raw[1:].encode()
    return raw


def _one_line(text: str) -> str:
    # a newline would end the STATUS= field and start a bogus one
    return " ".join(text.split())


class Notifier:
    """Sends state changes to systemd over `$NOTIFY_SOCKET`; a no-op when it is unset.

    Sends never block (the socket is non-blocking) and never raise: a failure is logged
    once, then counted quietly, so a missing or full socket cannot disturb the daemon.

    Args:
        socket_path: the notify socket (`@name` for an abstract one); None or empty
            disables every send.
    """

    def __init__(self, socket_path: str | None = None) -> None:
        self._address = _address(socket_path) if socket_path else None
        self._sock: socket.socket | None = None
        self._warned = False
        self.failures = 0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Notifier:
        """A notifier for `$NOTIFY_SOCKET` (disabled when the variable is unset)."""
        env = os.environ if environ is None else environ
        return cls(env.get("NOTIFY_SOCKET") or None)

    @property
    def enabled(self) -> bool:
        """Whether there is a socket to notify at all."""
        return self._address is not None

    def send(self, *fields: str) -> bool:
        """Send `KEY=value` fields as one datagram; True if it was handed to the socket."""
        if self._address is None:
            return False
        payload = "\n".join(fields).encode()
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                self._sock.setblocking(False)
            self._sock.sendto(payload, self._address)
        except OSError as exc:
            self.failures += 1
            if not self._warned:
                self._warned = True
                log.warning("sd_notify failed, further failures are not logged: %s", exc)
            return False
        return True

    def ready(self, status: str | None = None) -> bool:
        """The daemon serves (after start, or after a reload finished)."""
        fields = ["READY=1"]
        if status:
            fields.append(f"STATUS={_one_line(status)}")
        return self.send(*fields)

    def reloading(self) -> bool:
        """A reload starts; systemd 253+ wants the monotonic time with it (older ignore it)."""
        return self.send("RELOADING=1", f"MONOTONIC_USEC={time.monotonic_ns() // 1000}")

    def stopping(self) -> bool:
        """The daemon is shutting down."""
        return self.send("STOPPING=1")

    def status(self, text: str) -> bool:
        """A one-line summary shown by `systemctl status`."""
        return self.send(f"STATUS={_one_line(text)}")

    def watchdog(self) -> bool:
        """One keep-alive ping."""
        return self.send("WATCHDOG=1")

    def close(self) -> None:
        """Release the socket; later sends open a new one."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def watchdog_interval_s(environ: Mapping[str, str] | None = None) -> float | None:
    """The watchdog timeout systemd expects pings within, or None when it is off.

    Off when `$WATCHDOG_USEC` is unset, not a positive integer, or `$WATCHDOG_PID`
    names another process (the variable was inherited, not meant for us).
    """
    env = os.environ if environ is None else environ
    raw = env.get("WATCHDOG_USEC", "")
    try:
        usec = int(raw)
    except ValueError:
        return None
    if usec <= 0:
        return None
    pid = env.get("WATCHDOG_PID")
    if pid is not None and pid != str(os.getpid()):
        return None
    return usec / 1_000_000


async def watchdog_loop(notifier: Notifier, interval_s: float) -> NoReturn:
    """Ping the watchdog every `interval_s / 2`, forever, from the event loop.

    The pings ride on the loop on purpose: a loop stalled by blocking work stops
    them, and systemd restarts the daemon. Send failures are absorbed by `Notifier`;
    cancellation ends the loop.

    Args:
        notifier: where pings go.
        interval_s: the watchdog timeout, from `watchdog_interval_s()`; must be > 0.
    """
    if interval_s <= 0:
        raise ValueError(f"interval_s must be > 0, got {interval_s!r}")
    while True:
        notifier.watchdog()
        await asyncio.sleep(interval_s / 2)
