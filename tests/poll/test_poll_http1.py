"""HTTP/1.1 response framing: heads, keep-alive rules, chunked bodies and their cap."""

from __future__ import annotations

import pytest

from cdnops.poll.http1 import BodyTooLargeError, ChunkedReader, Head, ProtocolError, parse_head


@pytest.mark.parametrize(
    ("raw", "head"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 12", Head(200, 12, False, True)),
        (
            b"HTTP/1.1 200 OK\r\ncontent-length:  3 \r\nConnection: close",
            Head(200, 3, False, False),
        ),
        (b"HTTP/1.0 200 OK\r\nContent-Length: 3", Head(200, 3, False, False)),
        (b"HTTP/1.0 200 OK\r\nConnection: keep-alive", Head(200, -1, False, True)),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 9",
            Head(200, -1, True, True),
        ),
        (b"HTTP/1.1 503 Service Unavailable", Head(503, -1, False, True)),
        (b"HTTP/1.1 204 No Content", Head(204, 0, False, True)),
    ],
)
def test_parse_head(raw: bytes, head: Head) -> None:
    assert parse_head(raw) == head


@pytest.mark.parametrize(
    "raw",
    [
        b"hello there",
        b"HTTP/1.1 abc OK",
        b"HTTP/1.1 200 OK\r\nno colon",
        b"HTTP/1.1 200\r\nContent-Length: -1",
    ],
)
def test_parse_head_rejects_non_http(raw: bytes) -> None:
    with pytest.raises(ProtocolError):
        parse_head(raw)


def test_chunked_reader_is_incremental() -> None:
    wire = b"4\r\nWiki\r\n6;ext=1\r\npedia \r\nE\r\nin \r\n\r\nchunks.\r\n0\r\n\r\nNEXT"
    reader = ChunkedReader(0, cap=1000)
    buf = bytearray()
    results = []
    for i in range(len(wire)):
        buf += wire[i : i + 1]
        results.append(reader.feed(buf))
    body = next(r for r in results if r is not None)
    assert body == b"Wikipedia in \r\n\r\nchunks."
    assert reader.end == len(wire) - len(b"NEXT")


def test_chunked_reader_with_trailers() -> None:
    buf = bytearray(b"3\r\nabc\r\n0\r\nX-Trailer: 1\r\n\r\n")
    reader = ChunkedReader(0, cap=10)
    assert reader.feed(buf) == b"abc"
    assert reader.end == len(buf)


def test_chunked_reader_refuses_a_chunk_over_the_cap_before_it_arrives() -> None:
    reader = ChunkedReader(0, cap=100)
    with pytest.raises(BodyTooLargeError):
        reader.feed(bytearray(b"40\r\n" + b"x" * 64 + b"\r\n40\r\n"))


@pytest.mark.parametrize("wire", [b"zz\r\n", b"-1\r\n", b"3\r\nabcXX"])
def test_chunked_reader_rejects_bad_framing(wire: bytes) -> None:
    with pytest.raises(ProtocolError):
        ChunkedReader(0, cap=100).feed(bytearray(wire))
