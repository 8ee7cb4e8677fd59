"""poller.awshttp (the lean keep-alive client under poller.awsjson) against kinesalite, and its
failure paths against a scripted HTTP/1.1 server on a real socket (plain and TLS with the test
CA): error bodies, 5xx, a connection closed mid-response, a timeout, stale keep-alives,
chunked, gzip and read-to-close bodies."""

from __future__ import annotations

import asyncio
import gzip
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import orjson
import pytest

from poller.awsjson import AwsError, AwsJsonClient
from poller.config_model import AwsConfig, ServiceEndpoint
from tests.helpers import create_stream, put_records, unique_name
from tests.infra.servers import _test_pki

Script = Callable[[int, bytes, asyncio.StreamWriter], Awaitable[None]]


def _client(endpoint: str, session: aiohttp.ClientSession, *, lean: bool = True,
            timeout: float = 30.0, ssl_context: ssl.SSLContext | None = None) -> AwsJsonClient:
    aws = AwsConfig(region="us-east-1", access_key_id="test", secret_access_key="test",
                    services={"kinesis": ServiceEndpoint(endpoint_url=endpoint)})
    return AwsJsonClient(service="kinesis", signing_name="kinesis",
                         target_prefix="Kinesis_20131202", json_version="1.1", aws=aws,
                         session=session, lean=lean, timeout_seconds=timeout,
                         ssl_context=ssl_context)


@asynccontextmanager
async def _scripted(script: Script, tls: ssl.SSLContext | None = None
                    ) -> AsyncIterator[tuple[str, list[bytes], list[int]]]:
    """An HTTP/1.1 server on 127.0.0.1 answering request ``n`` (counted over all connections)
    with ``script(n, request body, writer)``; yields (endpoint, request heads, connection
    numbers of each request)."""
    heads: list[bytes] = []
    conns: list[int] = []
    accepted = 0
    handlers: list[asyncio.Task[object]] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal accepted
        accepted += 1
        task = asyncio.current_task()
        assert task is not None
        handlers.append(task)
        conn = accepted
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(next(line.split(b":", 1)[1] for line in head.split(b"\r\n")
                                  if line.lower().startswith(b"content-length:")))
                body = await reader.readexactly(length)
                heads.append(head)
                conns.append(conn)
                await script(len(heads) - 1, body, writer)
                if writer.is_closing():
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=tls)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"{'https' if tls else 'http'}://{'localhost' if tls else '127.0.0.1'}:{port}", \
            heads, conns
    finally:
        server.close()
        for task in handlers:
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)


def _answer(status: int, body: bytes, *extra: bytes) -> bytes:
    headers = b"".join(h + b"\r\n" for h in extra)
    if not any(h.lower().startswith((b"transfer-encoding", b"connection: close"))
               for h in extra):
        headers += b"Content-Length: %d\r\n" % len(body)
    return b"HTTP/1.1 %d X\r\n%s\r\n%s" % (status, headers, body)


async def _reply(writer: asyncio.StreamWriter, data: bytes, close: bool = False) -> None:
    writer.write(data)
    await writer.drain()
    if close:
        writer.close()


async def test_reads_kinesalite_records_over_one_kept_alive_connection(
        kinesalite_endpoint: str) -> None:
    stream = unique_name("lean")
    create_stream(kinesalite_endpoint, stream, shards=1)
    put_records(kinesalite_endpoint, stream, [("k", "hello"), ("k", "world")])
    async with aiohttp.ClientSession() as session:
        lean = _client(kinesalite_endpoint, session)
        plain = _client(kinesalite_endpoint, session, lean=False)
        try:
            shards = await lean.call("ListShards", {"StreamName": stream})
            assert shards == await plain.call("ListShards", {"StreamName": stream})
            it = await lean.call("GetShardIterator", {
                "StreamName": stream, "ShardId": shards["Shards"][0]["ShardId"],
                "ShardIteratorType": "TRIM_HORIZON"})
            resp = await lean.call("GetRecords", {"ShardIterator": it["ShardIterator"]})
            assert [r["Data"] for r in resp["Records"]] == ["aGVsbG8=", "d29ybGQ="]
            assert lean.idle_connections == 1, "three calls in a row should share a connection"
            with pytest.raises(AwsError) as missing:
                await lean.call("DescribeStream", {"StreamName": unique_name("missing")})
            assert (missing.value.code, missing.value.status) == ("ResourceNotFoundException",
                                                                  400)
            assert not missing.value.retryable
        finally:
            lean.close()


async def test_error_bodies_and_5xx_become_named_aws_errors() -> None:
    async def script(n: int, body: bytes, writer: asyncio.StreamWriter) -> None:
        if n == 0:
            await _reply(writer, _answer(400, b'{"__type":"com.amazon#ExpiredIteratorException",'
                                              b'"message":"too old"}'))
        elif n == 1:
            await _reply(writer, _answer(500, b'{"__type":"InternalFailure"}'))
        else:
            await _reply(writer, _answer(503, b"<html>busy</html>"))

    async with _scripted(script) as (endpoint, _heads, _conns), aiohttp.ClientSession() as s:
        client = _client(endpoint, s)
        errors = []
        for _ in range(3):
            with pytest.raises(AwsError) as err:
                await client.call("GetRecords", {"ShardIterator": "x"})
            errors.append((err.value.code, err.value.message, err.value.status,
                           err.value.retryable))
        client.close()
    assert errors == [("ExpiredIteratorException", "too old", 400, False),
                      ("InternalFailure", "", 500, True),
                      ("HTTP503", "<html>busy</html>", 503, True)]


async def test_a_connection_closed_mid_response_is_a_retryable_connection_error() -> None:
    async def script(n: int, body: bytes, writer: asyncio.StreamWriter) -> None:
        await _reply(writer, b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"Reco", close=True)

    async with _scripted(script) as (endpoint, heads, _conns), aiohttp.ClientSession() as s:
        client = _client(endpoint, s)
        with pytest.raises(AwsError) as err:
            await client.call("GetRecords", {"ShardIterator": "x"})
        client.close()
    assert (err.value.code, err.value.status, err.value.retryable) == ("ConnectionError", 0, True)
    assert "mid-response" in err.value.message
    assert len(heads) == 1, "a partly answered request must not be sent again"


async def test_a_silent_server_times_out_as_a_connection_error() -> None:
    async def script(n: int, body: bytes, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(30)  # the server's silence under test, not synchronisation

    async with _scripted(script) as (endpoint, _heads, _conns), aiohttp.ClientSession() as s:
        client = _client(endpoint, s, timeout=0.3)
        with pytest.raises(AwsError) as err:
            await client.call("GetRecords", {"ShardIterator": "x"})
        assert client.idle_connections == 0, "a timed-out connection must not be reused"
        client.close()
    assert (err.value.code, err.value.status) == ("ConnectionError", 0)
    assert "TimeoutError" in err.value.message


async def test_chunked_gzip_and_read_to_close_bodies_and_a_stale_keepalive() -> None:
    doc = b'{"Records":[],"NextShardIterator":"next","MillisBehindLatest":0}'
    zipped = gzip.compress(doc)

    async def script(n: int, body: bytes, writer: asyncio.StreamWriter) -> None:
        assert orjson.loads(body) == {"ShardIterator": "x"}
        if n == 0:  # chunked, in two chunks with an extension, then trailers
            await _reply(writer, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                         + b"%x;ext=1\r\n%s\r\n" % (10, doc[:10])
                         + b"%x\r\n%s\r\n" % (len(doc) - 10, doc[10:]) + b"0\r\nX-T: 1\r\n\r\n")
        elif n == 1:  # gzip; then the server drops the idle connection
            await _reply(writer, _answer(200, zipped, b"Content-Encoding: gzip"), close=True)
        else:  # read to close
            await _reply(writer, _answer(200, doc, b"Connection: close"), close=True)

    async with _scripted(script) as (endpoint, heads, conns), aiohttp.ClientSession() as s:
        client = _client(endpoint, s)
        answers = []
        for _ in range(3):
            answers.append(await client.call("GetRecords", {"ShardIterator": "x"}))
        client.close()
    assert answers == [orjson.loads(doc)] * 3
    assert len(heads) == 3, "no request may be lost or repeated"
    assert conns == [1, 1, 2], "the second call reuses the connection, the third needs a new one"


async def test_https_with_the_test_ca_and_a_refused_unknown_ca(tmp_path: Path) -> None:
    ca, cert, key, _client_cert, _client_key = _test_pki()
    (tmp_path / "cert.pem").write_text(cert)
    (tmp_path / "key.pem").write_text(key)
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    trusted = ssl.create_default_context(cadata=ca)

    async def script(n: int, body: bytes, writer: asyncio.StreamWriter) -> None:
        await _reply(writer, _answer(200, b'{"Shards":[]}'))

    async with _scripted(script, server_tls) as (endpoint, heads, _c), \
            aiohttp.ClientSession() as s:
        client = _client(endpoint, s, ssl_context=trusted)
        assert await client.call("ListShards", {"StreamName": "s"}) == {"Shards": []}
        untrusted = _client(endpoint, s)  # the system's CAs do not know the test CA
        with pytest.raises(AwsError) as err:
            await untrusted.call("ListShards", {"StreamName": "s"})
        client.close()
        untrusted.close()
    assert err.value.code == "ConnectionError"
    assert "CERTIFICATE_VERIFY_FAILED" in err.value.message
    assert len(heads) == 1
    assert heads[0].split(b"\r\n")[0] == b"POST / HTTP/1.1"
    assert f"Host: {endpoint.split('://')[1]}".encode() in heads[0]


async def test_at_most_max_in_flight_calls_reach_the_server_at_once() -> None:
    from poller.awshttp import MAX_IN_FLIGHT

    active = 0
    most = 0
    full = asyncio.Event()

    async def script(n: int, body: bytes, writer: asyncio.StreamWriter) -> None:
        nonlocal active, most
        active += 1
        most = max(most, active)
        if active >= MAX_IN_FLIGHT:
            full.set()
        await full.wait()  # hold every answer until the client has filled its slots
        active -= 1
        await _reply(writer, _answer(200, b"{}"))

    async with _scripted(script) as (endpoint, heads, _conns), aiohttp.ClientSession() as s:
        client = _client(endpoint, s)
        calls = MAX_IN_FLIGHT + 44
        answers = await asyncio.gather(*(client.call("ListShards", {}) for _ in range(calls)))
        client.close()
    assert answers == [{}] * calls
    assert len(heads) == calls
    assert most == MAX_IN_FLIGHT
