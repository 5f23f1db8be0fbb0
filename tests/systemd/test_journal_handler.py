"""JournalHandler against a real AF_UNIX datagram socket standing in for journald."""

from __future__ import annotations

import fcntl
import io
import logging
import os
import socket
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest

from cdnops.journal import JournalHandler, encode_fields, message_fields, redact, stream_is_journal
from cdnops.logfmt import LogfmtFormatter


def parse_native(data: bytes) -> dict[str, str]:
    """Decode journald's native protocol, both the `K=v` and the length-prefixed form."""
    fields: dict[str, str] = {}
    pos = 0
    while pos < len(data):
        end = data.index(b"\n", pos)
        line = data[pos:end]
        if b"=" in line:
            key, value = line.split(b"=", 1)
            pos = end + 1
        else:
            key = line
            (size,) = struct.unpack("<Q", data[end + 1 : end + 9])
            value = data[end + 9 : end + 9 + size]
            assert data[end + 9 + size : end + 10 + size] == b"\n"
            pos = end + 10 + size
        fields[key.decode()] = value.decode()
    return fields


@pytest.fixture
def journald(tmp_path: Path) -> Iterator[tuple[str, socket.socket]]:
    path = tmp_path / "journal.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(5)
    yield str(path), sock
    sock.close()


@pytest.fixture
def logger() -> Iterator[logging.Logger]:
    log = logging.getLogger("cdnops.test.journal")
    log.propagate = False
    log.setLevel(logging.DEBUG)
    yield log
    for handler in list(log.handlers):
        log.removeHandler(handler)
        handler.close()


def _attach(logger: logging.Logger, handler: JournalHandler) -> JournalHandler:
    logger.addHandler(handler)
    return handler


def test_record_becomes_structured_fields(
    journald: tuple[str, socket.socket], logger: logging.Logger
) -> None:
    path, sock = journald
    _attach(logger, JournalHandler(path))
    logger.warning("poll failed appliance=sea01-oca-0001 site=sea01 reason=timeout")
    fields = parse_native(sock.recv(65536))
    assert fields.pop("CODE_LINE").isdigit()
    assert fields == {
        "MESSAGE": "poll failed appliance=sea01-oca-0001 site=sea01 reason=timeout",
        "PRIORITY": "4",
        "SYSLOG_IDENTIFIER": "cdnops",
        "CODE_FILE": __file__,
        "CODE_FUNC": "test_record_becomes_structured_fields",
        "LOGGER": "cdnops.test.journal",
        "APPLIANCE": "sea01-oca-0001",
        "SITE": "sea01",
        "REASON": "timeout",
    }


@pytest.mark.parametrize(
    ("level", "priority"),
    [
        (logging.DEBUG, "7"),
        (logging.INFO, "6"),
        (logging.WARNING, "4"),
        (logging.ERROR, "3"),
        (logging.CRITICAL, "2"),
    ],
)
def test_priorities(
    journald: tuple[str, socket.socket], logger: logging.Logger, level: int, priority: str
) -> None:
    path, sock = journald
    _attach(logger, JournalHandler(path))
    logger.log(level, "x")
    assert parse_native(sock.recv(65536))["PRIORITY"] == priority


def test_traceback_goes_in_a_multiline_message(
    journald: tuple[str, socket.socket], logger: logging.Logger
) -> None:
    path, sock = journald
    _attach(logger, JournalHandler(path))
    try:
        raise ValueError("bad tick")
    except ValueError:
        logger.exception("detection failed on tick 7")
    message = parse_native(sock.recv(65536))["MESSAGE"]
    assert message.startswith("detection failed on tick 7\nTraceback (most recent call last):")
    assert message.endswith("ValueError: bad tick")


def test_secrets_never_reach_the_journal(
    journald: tuple[str, socket.socket], logger: logging.Logger
) -> None:
    path, sock = journald
    _attach(logger, JournalHandler(path))
    logger.info('sent token=s3cr3t api_key="a b" header=Authorization: Bearer s3cr3t site=sea01')
    data = sock.recv(65536)
    assert b"s3cr3t" not in data
    assert b"a b" not in data
    fields = parse_native(data)
    assert (
        fields["MESSAGE"]
        == "sent token=*** api_key=*** header=Authorization: Bearer *** site=sea01"
    )
    assert (fields["TOKEN"], fields["API_KEY"], fields["SITE"]) == ("***", "***", "sea01")


def test_pairs_do_not_override_the_handler_fields(
    journald: tuple[str, socket.socket], logger: logging.Logger
) -> None:
    path, sock = journald
    _attach(logger, JournalHandler(path, identifier="cdnops-test"))
    logger.info('priority=0 message="forged" logger=evil path="/a b"')
    fields = parse_native(sock.recv(65536))
    assert (fields["PRIORITY"], fields["LOGGER"]) == ("6", "cdnops.test.journal")
    assert fields["SYSLOG_IDENTIFIER"] == "cdnops-test"
    assert fields["PATH"] == "/a b"


def test_oversized_record_is_passed_as_a_sealed_memfd(
    journald: tuple[str, socket.socket], logger: logging.Logger
) -> None:
    path, sock = journald
    _attach(logger, JournalHandler(path))
    big = "x" * 1_000_000  # far above what one datagram may carry
    logger.info("inventory dump %s", big)
    data, fds, _, _ = socket.recv_fds(sock, 65536, 1)
    assert data == b""
    assert len(fds) == 1
    try:
        # journald maps the file from its start; the write left the shared offset at the end
        fields = parse_native(os.pread(fds[0], os.fstat(fds[0]).st_size, 0))
        seals = fcntl.fcntl(fds[0], fcntl.F_GET_SEALS)
    finally:
        os.close(fds[0])
    assert seals & fcntl.F_SEAL_WRITE
    assert fields["MESSAGE"] == f"inventory dump {big}"


def test_missing_socket_falls_back_to_the_stream(tmp_path: Path, logger: logging.Logger) -> None:
    out = io.StringIO()
    handler = _attach(logger, JournalHandler(str(tmp_path / "absent.sock"), fallback=out))
    handler.setFormatter(LogfmtFormatter(journald=True))
    logger.error("cannot run token=s3cr3t: %s", "disk full")
    assert handler.fallbacks == 1
    text = out.getvalue()
    assert "s3cr3t" not in text
    assert (
        text == '<3>level=error logger=cdnops.test.journal msg="cannot run token=*** disk full"\n'
    )


def test_full_journal_socket_falls_back_instead_of_blocking(
    journald: tuple[str, socket.socket], logger: logging.Logger
) -> None:
    path, _ = journald  # nobody reads: the queue fills up
    out = io.StringIO()
    handler = _attach(logger, JournalHandler(path, fallback=out))
    for i in range(500):
        logger.info("line %d %s", i, "y" * 1024)
    assert 0 < handler.fallbacks < 500
    assert out.getvalue().count("\n") == handler.fallbacks


def test_encode_fields_length_prefixes_multiline_values() -> None:
    assert encode_fields({"A": "1", "B": "x\ny"}) == b"A=1\nB\n" + struct.pack("<Q", 3) + b"x\ny\n"


def test_message_fields_and_redact() -> None:
    assert message_fields('a=1 b="two words" c="q\\"uote" 9x=no') == {
        "A": "1",
        "B": "two words",
        "C": 'q"uote',
    }
    assert redact("password=hunter2 ok=1") == "password=*** ok=1"


def test_stream_is_journal_matches_dev_and_inode(tmp_path: Path) -> None:
    with (tmp_path / "out.log").open("w") as stream:
        st = os.fstat(stream.fileno())
        assert stream_is_journal(stream, {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"})
        assert not stream_is_journal(stream, {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino + 1}"})
        assert not stream_is_journal(stream, {})
    assert not stream_is_journal(io.StringIO(), {"JOURNAL_STREAM": "1:2"})
