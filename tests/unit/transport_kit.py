"""Real servers for the transport tests: a test CA (trustme), the OpenAI emulator over
HTTPS, raw TLS servers and a small HTTP CONNECT proxy, all on 127.0.0.1."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import trustme
from aiohttp import web

from relaygate.emulator import PROVIDERS, Knobs, build_app
from relaygate.emulator.base import Core
from relaygate.providers.base import UpstreamRequest
from relaygate.settings import Settings
from relaygate.transport.base import Transport
from relaygate.transport.factory import create_transport
from relaygate.transport.proxy import ProxyResolver

BACKENDS = ("fast", "aiohttp")
UPSTREAM_KEY = "sk-up-test"


class LoopbackCA:
    """A certificate authority, a server certificate for 127.0.0.1/localhost, and the CA file."""

    def __init__(self, directory: Path) -> None:
        self.ca = trustme.CA()
        self.cert = self.ca.issue_cert("127.0.0.1", "localhost")
        self.ca_path = directory / "test-ca.pem"
        self.ca.cert_pem.write_to_path(str(self.ca_path))

    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.cert.configure_cert(ctx)
        return ctx


def settings(backend: str, **changes: Any) -> Settings:
    base: dict[str, Any] = {
        "connect_timeout": 2.0,
        "first_byte_timeout": 3.0,
        "read_timeout": 3.0,
        "http_client": backend,
    }
    return Settings(**{**base, **changes})


@asynccontextmanager
async def open_transport(
    backend: str, env: dict[str, str] | None = None, **changes: Any
) -> AsyncIterator[Transport]:
    """A started transport; ``env`` stands for the process environment's proxy variables."""
    t = create_transport(settings(backend, **changes), ProxyResolver(env or {}))
    await t.start()
    try:
        yield t
    finally:
        await t.close()


def chat(url: str, *, stream: bool = False, proxy: str | None = None) -> UpstreamRequest:
    body = b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]'
    body += b',"stream":true}' if stream else b"}"
    return UpstreamRequest(
        url=url,
        headers={"Authorization": f"Bearer {UPSTREAM_KEY}", "Content-Type": "application/json"},
        body=body,
        proxy=proxy,
    )


class TLSEmulator:
    """The OpenAI emulator (relaygate.emulator) served over HTTPS; records client ports."""

    def __init__(self, ctx: ssl.SSLContext, **knobs: Any) -> None:
        self.ctx = ctx
        self.core = Core(Knobs(api_key=UPSTREAM_KEY, **knobs))
        self.peers: set[int] = set()
        self.runner: web.AppRunner | None = None
        self.port = 0

    async def start(self) -> TLSEmulator:
        app = build_app(PROVIDERS["openai"](self.core))

        @web.middleware
        async def record_peer(request: web.Request, handler: Any) -> web.StreamResponse:
            assert request.transport is not None
            self.peers.add(request.transport.get_extra_info("peername")[1])
            return await handler(request)  # type: ignore[no-any-return]

        app.middlewares.append(record_peer)
        self.runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0, ssl_context=self.ctx)
        await site.start()
        self.port = int(self.runner.addresses[0][1])
        return self

    def url(self, host: str = "127.0.0.1", path: str = "/v1/chat/completions") -> str:
        return f"https://{host}:{self.port}{path}"

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            await reader.readexactly(int(line.split(b":", 1)[1]))
    return head


async def drain_until_eof(reader: asyncio.StreamReader) -> None:
    with contextlib.suppress(ConnectionError):
        while await reader.read(65536):
            pass


class RawServer:
    """A raw asyncio server (TLS when given a context) running ``handler`` per connection."""

    def __init__(self, handler: Handler, ctx: ssl.SSLContext | None = None) -> None:
        self.handler = handler
        self.ctx = ctx
        self.connections = 0
        self.closed = asyncio.Event()
        self.server: asyncio.Server | None = None
        self.port = 0

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await self.handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        finally:
            writer.close()
            self.closed.set()

    async def start(self) -> RawServer:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.ctx)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    def url(self, path: str = "/v1/chat/completions") -> str:
        scheme = "https" if self.ctx is not None else "http"
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()


class ConnectProxy:
    """An HTTP proxy on loopback: CONNECT tunnels and absolute-form forwarding, byte pipes.

    Counts CONNECTs and forwarded requests, keeps every request head it received, and
    answers 407 when ``auth`` ("user:pass") is set and the request lacks it.
    """

    def __init__(self, auth: str | None = None) -> None:
        self.auth = auth
        self.connects: list[str] = []  # "host:port" per CONNECT
        self.forwarded: list[bytes] = []  # request lines of absolute-form requests
        self.heads: list[bytes] = []
        self.server: asyncio.Server | None = None
        self.port = 0
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> ConnectProxy:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
        for task in list(self._tasks):
            task.cancel()

    def _authorized(self, head: bytes) -> bool:
        if self.auth is None:
            return True
        want = b"proxy-authorization: basic " + base64.b64encode(self.auth.encode()).lower()
        return any(line.lower() == want for line in head.split(b"\r\n"))

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            self.heads.append(head)
            method, target, _ = head.split(b"\r\n", 1)[0].split(b" ", 2)
            if not self._authorized(head):
                writer.write(
                    b"HTTP/1.1 407 Proxy Authentication Required\r\n"
                    b'Proxy-Authenticate: Basic realm="test"\r\nContent-Length: 0\r\n\r\n'
                )
                await writer.drain()
                return
            if method == b"CONNECT":
                host, port = target.decode().rsplit(":", 1)
                self.connects.append(target.decode())
                up_reader, up_writer = await asyncio.open_connection(host, int(port))
                writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
                first = b""
            else:  # absolute form: http://host:port/path
                self.forwarded.append(head.split(b"\r\n", 1)[0])
                hostport = target.split(b"//", 1)[1].split(b"/", 1)[0].decode()
                host, port = hostport.rsplit(":", 1)
                up_reader, up_writer = await asyncio.open_connection(host, int(port))
                first = head
            up_writer.write(first)
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        except (ConnectionError, asyncio.IncompleteReadError, ValueError, OSError):
            pass
        finally:
            writer.close()

    async def _pipe(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        try:
            while data := await src.read(65536):
                dst.write(data)
                await dst.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            dst.close()
