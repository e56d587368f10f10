"""A loopback stand-in for DuckDuckGo's HTML endpoint, reached the way the ``ddgs``
package really reaches it: through an HTTP proxy.

``ddgs`` takes ``proxy=`` and ``verify=`` (a CA file). :class:`DuckDuckGoProxy` is that
proxy: it accepts ``CONNECT html.duckduckgo.com:443``, terminates TLS itself with the
server context the caller gives (a certificate for ``html.duckduckgo.com`` from a test CA,
e.g. made with ``trustme``: nothing here creates certificates), reads the
``POST /html/`` form (``q``, ``l`` region, ``df`` time limit) and answers result blocks in
the markup ``ddgs``' duckduckgo engine parses (``div.result__body`` with an ``h2`` title
and an ``a`` link/snippet), from the emulators' corpus (``emulator/search_common.py``).

Knobs (attributes, changed between searches): ``status`` (answer that HTTP status
instead of results), ``delay`` (seconds before answering), ``refuse_connect`` (answer the
CONNECT with 502). ``requests`` keeps what was asked: ``(host, method, path, form)``.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import ssl
import threading
from urllib.parse import parse_qs

from relaygate.emulator.search_common import corpus_search, split_sites

__all__ = ["DuckDuckGoProxy"]

_MAX_HEAD = 64 * 1024
_MAX_BODY = 1024 * 1024
_TIMELIMIT_DAYS = {"d": 1, "w": 7, "m": 31, "y": 366}


def results_page(query: str, timelimit: str = "") -> str:
    """DuckDuckGo's HTML result page (the parts ``ddgs`` reads) for ``query``."""
    text, sites = split_sites(query)
    found = corpus_search(text, sites=sites, max_age_days=_TIMELIMIT_DAYS.get(timelimit))
    blocks = []
    for doc, _score in found[:10]:
        url, title, snippet = (html.escape(v) for v in (doc.url, doc.title, doc.content))
        blocks.append(
            '<div class="result results_links results_links_deep web-result">'
            '<div class="links_main links_deep result__body">'
            f'<h2 class="result__title"><a class="result__a" href="{url}">{title}</a></h2>'
            f'<a class="result__snippet" href="{url}">{snippet}</a>'
            "</div></div>"
        )
    if not blocks:
        blocks.append('<div class="no-results">No results.</div>')
    return (
        "<!DOCTYPE html><html><head><title>DuckDuckGo</title></head><body>"
        f'<div class="results">{"".join(blocks)}</div></body></html>'
    )


class DuckDuckGoProxy:
    """The proxy on ``127.0.0.1``, served from a background thread (``with`` starts it)."""

    def __init__(self, tls: ssl.SSLContext, *, host: str = "127.0.0.1") -> None:
        self.tls = tls
        tls.set_alpn_protocols(["http/1.1"])  # HTTP/1.1 only: the proxy speaks no h2
        self.host = host
        self.port = 0
        self.status = 200
        self.delay = 0.0
        self.refuse_connect = False
        self.requests: list[tuple[str, str, str, dict[str, str]]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        """The ``proxy=`` value for ``ddgs``."""
        return f"http://{self.host}:{self.port}"

    # -- one connection ------------------------------------------------------------------
    async def _head(self, reader: asyncio.StreamReader) -> list[str]:
        raw = await reader.readuntil(b"\r\n\r\n")
        if len(raw) > _MAX_HEAD:
            raise ValueError("head too large")
        return raw.decode("latin-1").split("\r\n")[:-2]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await self._head(reader)
            method, target, _ = [*head[0].split(" "), "", "", ""][:3]
            if method != "CONNECT":
                writer.write(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
                return
            if self.refuse_connect:
                writer.write(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
                return
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            await writer.drain()
            await writer.start_tls(self.tls)
            await self._serve_one(target.split(":")[0], reader, writer)
        except (OSError, ValueError, asyncio.IncompleteReadError, ssl.SSLError):
            return  # the client (ddgs) went away or spoke no TLS: nothing to answer
        finally:
            with contextlib.suppress(Exception):
                await writer.drain()
            writer.close()

    async def _serve_one(
        self, host: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        head = await self._head(reader)
        method, path, _ = [*head[0].split(" "), "", "", ""][:3]
        headers = {}
        for line in head[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = min(int(headers.get("content-length", "0") or 0), _MAX_BODY)
        body = await reader.readexactly(length) if length else b""
        form = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
        self.requests.append((host, method, path, form))
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.status != 200:
            page, status = f"<html><body>error {self.status}</body></html>", self.status
        elif host != "html.duckduckgo.com" or path.split("?")[0] != "/html/":
            page, status = "<html><body>not found</body></html>", 404
        else:
            page, status = results_page(form.get("q", ""), form.get("df", "")), 200
        data = page.encode()
        writer.write(
            f"HTTP/1.1 {status} X\r\nContent-Type: text/html; charset=utf-8\r\n"
            f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n".encode()
            + data
        )

    # -- lifecycle -----------------------------------------------------------------------
    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._server = loop.run_until_complete(
            asyncio.start_server(self._handle, self.host, self.port)
        )
        self.port = int(self._server.sockets[0].getsockname()[1])
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            self._server.close()
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(self._server.wait_closed())
            loop.close()

    def start(self) -> DuckDuckGoProxy:
        self._thread = threading.Thread(target=self._run, name="ddg-proxy", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the DuckDuckGo proxy did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
        self._thread = None
        self._loop = None

    def __enter__(self) -> DuckDuckGoProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
