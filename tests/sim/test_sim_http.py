"""The simulator's HTTP/1.1 server: keep-alive, pipelining, Connection: close, bad requests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import orjson
import pytest
from sim_helpers import TOKEN

from cdnops.sim.http import simple_get_path
from cdnops.sim.server import SimServer

Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]


@pytest.fixture
async def conn(sim: SimServer) -> AsyncIterator[Conn]:
    reader, writer = await asyncio.open_connection("127.0.0.1", sim.port)
    yield reader, writer
    writer.close()
    await writer.wait_closed()


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    async with asyncio.timeout(3):
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers = {k.lower(): v.strip() for k, v in (h.split(":", 1) for h in lines[1:] if h)}
        body = await reader.readexactly(int(headers["content-length"]))
    return status, headers, body


async def at_eof(reader: asyncio.StreamReader) -> bool:
    async with asyncio.timeout(3):
        return await reader.read() == b""


async def test_keep_alive_serves_many_requests_on_one_connection(conn: Conn) -> None:
    reader, writer = conn
    for i in (1, 2, 3):
        writer.write(b"GET /a/sea01-oca-00%d/health HTTP/1.1\r\nHost: x\r\n\r\n" % i)
        status, headers, body = await read_response(reader)
        assert status == 200
        assert "connection" not in headers
        assert orjson.loads(body)["appliance"] == f"sea01-oca-00{i}"


async def test_explicit_keep_alive_keeps_the_connection(conn: Conn) -> None:
    reader, writer = conn
    for path in (b"health", b"metrics", b"health"):
        writer.write(b"GET /a/sea01-oca-001/%s HTTP/1.1\r\nConnection: keep-alive\r\n\r\n" % path)
        status, headers, body = await read_response(reader)
        assert status == 200
        assert "connection" not in headers
        assert body.startswith(b"{" if path == b"health" else b"# TYPE")


async def test_pipelined_requests_are_answered_in_order(conn: Conn) -> None:
    reader, writer = conn
    writer.write(
        b"GET /a/ams02-oca-001/health HTTP/1.1\r\n\r\n"
        b"GET /a/ams02-oca-002/metrics?x=1 HTTP/1.1\r\n\r\n"
        b"GET /a/ams02-oca-003/health HTTP/1.1\r\n\r\n"
    )
    first, second, third = [await read_response(conn[0]) for _ in range(3)]
    assert orjson.loads(first[2])["appliance"] == "ams02-oca-001"
    assert second[2].startswith(b"# TYPE appliance_cpu_util gauge")
    assert orjson.loads(third[2])["appliance"] == "ams02-oca-003"
    assert reader.at_eof() is False


async def test_connection_close_is_honoured(conn: Conn) -> None:
    reader, writer = conn
    writer.write(b"GET /a/sea01-oca-001/health HTTP/1.1\r\nConnection: close\r\n\r\n")
    status, headers, _ = await read_response(reader)
    assert (status, headers["connection"]) == (200, "close")
    assert await at_eof(reader)


async def test_http_1_0_without_keep_alive_closes(conn: Conn) -> None:
    reader, writer = conn
    writer.write(b"GET /a/sea01-oca-001/health HTTP/1.0\r\n\r\n")
    status, _, _ = await read_response(reader)
    assert status == 200
    assert await at_eof(reader)


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GARBAGE\r\n\r\n", 400),
        (b"GET /a/sea01-oca-001/health HTTP/1.1\r\nno colon here\r\n\r\n", 400),
        (b"GET /a/sea01-oca-001/health HTTP/2.0\r\n\r\n", 505),
        (b"POST /a/sea01-oca-001/actions/drain HTTP/1.1\r\nContent-Length: x\r\n\r\n", 400),
        (b"POST /a/x/actions/drain HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 501),
        (b"POST /a/x/actions/drain HTTP/1.1\r\nContent-Length: 999999\r\n\r\n", 413),
    ],
)
async def test_malformed_requests_get_an_error_and_the_connection_closes(
    conn: Conn, request_bytes: bytes, status: int
) -> None:
    reader, writer = conn
    writer.write(request_bytes)
    got, _, body = await read_response(reader)
    assert got == status
    assert "error" in orjson.loads(body)
    assert await at_eof(reader)


async def test_oversized_head_is_refused(conn: Conn) -> None:
    reader, writer = conn
    writer.write(b"GET /a/sea01-oca-001/health HTTP/1.1\r\nX-Pad: " + b"p" * 20000)
    status, _, _ = await read_response(reader)
    assert status == 431


async def test_post_body_split_across_packets_is_assembled(conn: Conn) -> None:
    reader, writer = conn
    body = b'{"service": "nginx"}'
    head = (
        b"POST /a/sea01-oca-002/actions/restart_service HTTP/1.1\r\n"
        b"Authorization: Bearer %s\r\nContent-Length: %d\r\n\r\n" % (TOKEN.encode(), len(body))
    )
    writer.write(head + body[:5])
    await writer.drain()
    writer.write(body[5:])
    status, _, answer = await read_response(reader)
    assert status == 202
    assert orjson.loads(answer)["status"] == "accepted"


async def test_wrong_method_is_405(conn: Conn) -> None:
    reader, writer = conn
    writer.write(b"DELETE /a/sea01-oca-001/health HTTP/1.1\r\n\r\n")
    status, _, _ = await read_response(reader)
    assert status == 405


@pytest.mark.parametrize(
    ("request_bytes", "path"),
    [
        (b"GET /a/x-1/health HTTP/1.1\r\nHost: h:1\r\nAccept: */*\r\n\r\n", "/a/x-1/health"),
        (b"GET /a/x/metrics?debug=1 HTTP/1.1\r\n\r\n", "/a/x/metrics"),
        (b"GET /a/x/health HTTP/1.1\r\nConnection: Keep-Alive\r\n\r\n", "/a/x/health"),
        (b"GET /a/x/health HTTP/1.1\r\nConnection: close\r\n\r\n", None),
        (b"GET /a/x/health HTTP/1.1\r\ncontent-length: 0\r\n\r\n", None),
        (b"GET /a/x/health HTTP/1.1\r\nbroken header\r\n\r\n", None),
        (b"GET /a/x/health HTTP/1.0\r\n\r\n", None),
        (b"GET /_sim/faults HTTP/1.1\r\n\r\n", None),
        (b"POST /a/x/actions/drain HTTP/1.1\r\n\r\n", None),
        (b"GET /a/x/health HTTP/1.1\r\n\r\nGET /a/y/health HTTP/1.1\r\n\r\n", None),
        (b"GET /a/x/health HTTP/1.1\r\nHost: h", None),
    ],
)
def test_only_plain_single_gets_take_the_fast_path(request_bytes: bytes, path: str | None) -> None:
    assert simple_get_path(request_bytes) == path
