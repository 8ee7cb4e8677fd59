"""A lean HTTP/1.1 keep-alive client for the AWS JSON hot calls (idle GetRecords).

aiohttp spends ~0.3 ms of CPU per request (its request/response objects, header multidicts,
timers, the connector's bookkeeping); an idle poll needs none of it: one POST with prepared
headers, one small answer. This client writes the request head and body with one
``transport.write`` on a pooled keep-alive connection and parses the status line, the three
headers it needs and a Content-Length, chunked or read-to-close body (gzip/deflate decoded)
in an ``asyncio.Protocol``. TLS uses the given ``ssl.SSLContext``; no proxies (as the shared
aiohttp session, which does not read the proxy environment). Everything else stays on aiohttp.
"""

from __future__ import annotations

import asyncio
import ssl
import zlib
from urllib.parse import urlsplit

MAX_IDLE = 4096  # idle keep-alive connections kept per endpoint (one per idle shard reader)
# Calls in flight per endpoint (more wait for a free slot): 1,000 idle shard readers otherwise
# keep ~1,000 requests queued in a slow server and open connections it is too busy to accept
# (kinesalite on 1,000 shards: calls unanswered for 30 s).
MAX_IN_FLIGHT = 256
IDLE_SECONDS = 50.0  # a connection idle longer is closed (servers drop idle ones at ~60 s)


class HttpConnectionError(Exception):
    """The connection failed, closed or answered with something that is not HTTP/1.x."""


class _Response(asyncio.Protocol):
    """One connection: parses one response at a time into ``waiter``'s (status, body)."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.reusable = True
        self.idle_since = 0.0
        self.deadline = 0.0
        self._buf = bytearray()
        self._waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self._status = 0
        self._head_done = False
        self._length = -1  # Content-Length, -1 chunked or to-close
        self._chunked = False
        self._encoding = b""
        self.got_bytes = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def start(self, waiter: asyncio.Future[tuple[int, bytes]]) -> None:
        self._waiter = waiter
        self._buf.clear()
        self._head_done = False
        self.got_bytes = False

    def data_received(self, data: bytes) -> None:
        if self._waiter is None:  # bytes nobody asked for: the connection is out of step
            self.reusable = False
            if self.transport is not None:
                self.transport.close()
            return
        self.got_bytes = True
        self._buf += data
        try:
            self._parse(eof=False)
        except HttpConnectionError as exc:
            self._fail(exc)

    def eof_received(self) -> bool:
        self.reusable = False
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.reusable = False
        if self._waiter is None:
            return
        if self._head_done and not self._chunked and self._length < 0:
            try:
                self._parse(eof=True)
            except HttpConnectionError as error:
                self._fail(error)
            return
        self._fail(HttpConnectionError(
            f"connection closed {'mid-response' if self.got_bytes else 'before a response'}"
            + (f": {exc}" if exc else "")))

    def fail_timeout(self, seconds: float) -> None:
        self._fail(TimeoutError(f"no answer within {seconds:g} s"))

    def _fail(self, exc: Exception) -> None:
        waiter, self._waiter = self._waiter, None
        self.reusable = False
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)
        if self.transport is not None:
            self.transport.close()

    def _parse(self, eof: bool) -> None:
        buf = self._buf
        if not self._head_done:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > 65536:
                    raise HttpConnectionError("response head over 64 KiB")
                return
            self._read_head(bytes(buf[:end]))
            del buf[:end + 4]
        if self._chunked:
            body = _dechunk(buf)
            if body is None:
                return
        elif self._length >= 0:
            if len(buf) < self._length:
                return
            if len(buf) > self._length:
                self.reusable = False
            body = bytes(buf[:self._length])
        elif eof:
            body = bytes(buf)
        else:
            return
        if self._encoding:
            body = _decode(body, self._encoding)
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result((self._status, body))

    def _read_head(self, head: bytes) -> None:
        lines = head.split(b"\r\n")
        parts = lines[0].split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
            raise HttpConnectionError(f"not an HTTP/1.x response: {lines[0][:80]!r}")
        self._status = int(parts[1])
        self._head_done = True
        self._length = -1
        self._chunked = False
        self._encoding = b""
        if parts[0] == b"HTTP/1.0":
            self.reusable = False
        for line in lines[1:]:
            name, _sep, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                try:
                    self._length = int(value)
                except ValueError:
                    raise HttpConnectionError(f"bad Content-Length {value[:40]!r}") from None
            elif name == b"transfer-encoding":
                self._chunked = b"chunked" in value.lower()
            elif name == b"content-encoding":
                self._encoding = value.strip().lower()
            elif name == b"connection" and b"close" in value.lower():
                self.reusable = False
        if self._chunked:
            self._length = -1
        elif self._length < 0:
            self.reusable = False  # read to close
        if self._status in (204, 304) or 100 <= self._status < 200:
            if 100 <= self._status < 200:
                raise HttpConnectionError(f"unexpected interim response {self._status}")
            self._length = 0


def _dechunk(buf: bytearray) -> bytes | None:
    """The body of a complete chunked message in ``buf`` (trailers ignored), or None."""
    out = bytearray()
    pos = 0
    while True:
        eol = buf.find(b"\r\n", pos)
        if eol < 0:
            return None
        size_text = bytes(buf[pos:eol]).split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise HttpConnectionError(f"bad chunk size {size_text[:20]!r}") from None
        if size == 0:
            end = buf.find(b"\r\n\r\n", eol)
            if end < 0 and buf[eol:eol + 4] != b"\r\n\r\n":
                return None
            return bytes(out)
        start = eol + 2
        if len(buf) < start + size + 2:
            return None
        out += buf[start:start + size]
        pos = start + size + 2


def _decode(body: bytes, encoding: bytes) -> bytes:
    try:
        if encoding in (b"gzip", b"x-gzip"):
            return zlib.decompress(body, 16 + zlib.MAX_WBITS)
        if encoding == b"deflate":
            try:
                return zlib.decompress(body)
            except zlib.error:
                return zlib.decompress(body, -zlib.MAX_WBITS)
    except zlib.error as exc:
        raise HttpConnectionError(f"bad {encoding.decode()} body: {exc}") from None
    if encoding == b"identity":
        return body
    raise HttpConnectionError(f"unsupported Content-Encoding {encoding.decode()!r}")


class LeanHttpClient:
    """POSTs to one ``http://`` or ``https://`` endpoint over a pool of keep-alive connections.

    ``post(head, body)`` sends ``head`` (the request line and headers, ending in a blank line)
    and ``body``; it answers (status, decoded body) or raises ``HttpConnectionError`` /
    ``TimeoutError`` (after ``timeout_seconds``, connecting included, checked by one timer
    every quarter of it, at most every second). A reused connection the server closed before
    answering is retried once on a new one (as botocore/urllib3 do)."""

    def __init__(self, url: str, ssl_context: ssl.SSLContext | None = None,
                 timeout_seconds: float = 30.0) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"unsupported endpoint {url!r}")
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.ssl: ssl.SSLContext | None = None
        if parts.scheme == "https":
            self.ssl = ssl_context if ssl_context is not None else ssl.create_default_context()
        self.timeout_seconds = timeout_seconds  # per post, connecting included
        self._sweep_every = min(1.0, timeout_seconds / 4)
        self._busy: set[_Response] = set()
        self._sweeping = False
        self._idle: list[_Response] = []
        self._in_flight = asyncio.Semaphore(MAX_IN_FLIGHT)
        self._closed = False

    @staticmethod
    def supports(url: str) -> bool:
        return urlsplit(url).scheme in ("http", "https")

    @property
    def idle_connections(self) -> int:
        return sum(1 for conn in self._idle if not conn.closed)

    async def _connect(self) -> _Response:
        loop = asyncio.get_running_loop()
        try:
            _transport, conn = await loop.create_connection(
                _Response, self.host, self.port, ssl=self.ssl,
                server_hostname=self.host if self.ssl is not None else None)
        except (OSError, ssl.SSLError) as exc:
            raise HttpConnectionError(f"connect to {self.host}:{self.port}: {exc}") from exc
        return conn

    def _take_idle(self) -> _Response | None:
        idle = self._idle
        now = asyncio.get_running_loop().time()
        while idle:
            conn = idle.pop()
            if conn.reusable and not conn.closed and now - conn.idle_since < IDLE_SECONDS:
                return conn
            if conn.transport is not None:
                conn.transport.close()
        return None

    async def post(self, head: bytes, body: bytes) -> tuple[int, bytes]:
        deadline = asyncio.get_running_loop().time() + self.timeout_seconds
        async with self._in_flight:
            return await self._post(head, body, deadline)

    async def _post(self, head: bytes, body: bytes, deadline: float) -> tuple[int, bytes]:
        loop = asyncio.get_running_loop()
        for _attempt in range(2):
            conn = self._take_idle()
            if conn is None:
                conn = await asyncio.wait_for(self._connect(), max(0.0, deadline - loop.time()))
                return await self._exchange(conn, head, body, deadline)
            try:
                return await self._exchange(conn, head, body, deadline)
            except HttpConnectionError:
                if not conn.got_bytes:  # a kept-alive connection the server had closed
                    continue
                raise
        raise AssertionError("unreachable")

    async def _exchange(self, conn: _Response, head: bytes, body: bytes,
                        deadline: float) -> tuple[int, bytes]:
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[tuple[int, bytes]] = loop.create_future()
        conn.start(waiter)
        conn.deadline = deadline
        transport = conn.transport
        assert transport is not None
        self._busy.add(conn)
        if not self._sweeping:
            self._sweeping = True
            loop.call_later(self._sweep_every, self._sweep)
        try:
            transport.write(head + body)
            result = await waiter
        except BaseException:
            conn.reusable = False
            conn._waiter = None
            transport.close()
            raise
        finally:
            self._busy.discard(conn)
        if conn.reusable and not conn.closed and not self._closed and len(self._idle) < MAX_IDLE:
            conn.idle_since = loop.time()
            self._idle.append(conn)
        else:
            transport.close()
        return result

    def _sweep(self) -> None:
        """Fails the calls past their deadline: one timer for all calls instead of one each."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        for conn in [c for c in self._busy if c.deadline <= now]:
            conn.fail_timeout(self.timeout_seconds)
        if self._busy:
            loop.call_later(self._sweep_every, self._sweep)
        else:
            self._sweeping = False

    def close(self) -> None:
        self._closed = True
        for conn in self._idle:
            if conn.transport is not None:
                conn.transport.close()
        self._idle.clear()
