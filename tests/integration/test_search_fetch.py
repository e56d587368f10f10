"""The online-search page fetcher (relaygate.online.fetch) against real aiohttp servers on
loopback: a "public" server on 127.0.0.2 (the tests' ``is_public`` treats that one address
as public) and a "private" one on 127.0.0.1, on the same port, so that a DNS answer which
changes from one to the other is a real rebinding attack. Every refusal is checked twice:
the fetch returns nothing, and the private server saw no request."""

from __future__ import annotations

import asyncio
import gzip
import ipaddress
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

import pytest
from aiohttp import web

from relaygate.online.base import Hit, OnlineSettings
from relaygate.online.extract import decode_body
from relaygate.online.fetch import (
    USER_AGENT,
    PageFetcher,
    is_public_address,
    parse_ip_host,
)

PUBLIC_IP = "127.0.0.2"
PRIVATE_IP = "127.0.0.1"

ARTICLE = (
    "<html><head><title>Relaygate notes</title></head><body>"
    "<nav><a href='/'>Home</a> <a href='/about'>About us</a> <a href='/shop'>Shop</a></nav>"
    "<div class='advert'>Buy cheap watches today advertisement</div>"
    "<article><h1>How the relay retries</h1>"
    + "<p>The relay retries a failed attempt on the next channel in the chain, and each "
    "attempt is recorded in the request log with its status and latency.</p>"
    * 4
    + "</article><footer>Copyright footer text</footer></body></html>"
)


BOMB = gzip.compress(b" " * 30_000_000, compresslevel=9)  # 30 MB of spaces in ~30 KB


def _test_is_public(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return str(ip) == PUBLIC_IP or is_public_address(ip)


@dataclass
class Servers:
    port: int
    private_hits: list[str] = field(default_factory=list)  # paths the private server served
    seen_headers: list[dict[str, str]] = field(default_factory=list)

    def public(self, path: str) -> str:
        return f"http://{PUBLIC_IP}:{self.port}{path}"

    def private(self, path: str) -> str:
        return f"http://{PRIVATE_IP}:{self.port}{path}"


def _public_app(srv: Servers) -> web.Application:
    async def page(request: web.Request) -> web.Response:
        srv.seen_headers.append(dict(request.headers))
        resp = web.Response(text=ARTICLE, content_type="text/html")
        resp.set_cookie("session", "abc")
        return resp

    async def whoami(request: web.Request) -> web.Response:
        return web.Response(text="public server", content_type="text/plain")

    async def plain(request: web.Request) -> web.Response:
        return web.Response(text="just   plain\n\n\n\ntext", content_type="text/plain")

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPFound(request.query["to"])

    async def chain(request: web.Request) -> web.Response:
        n = int(request.match_info["n"])
        if n == 0:
            return web.Response(text="end of chain", content_type="text/plain")
        raise web.HTTPFound(f"/chain/{n - 1}")

    async def big(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/plain; charset=utf-8"})
        await resp.prepare(request)
        chunk = ("é" * 5120).encode()
        try:
            for _ in range(400):  # 400 x 10 KiB = 4 MiB, more than any test's cap
                await resp.write(chunk)
            await resp.write_eof()
        except ConnectionError:
            pass  # the fetcher stopped reading and closed the connection
        return resp

    async def bomb(request: web.Request) -> web.Response:
        return web.Response(
            body=BOMB, headers={"Content-Type": "text/plain", "Content-Encoding": "gzip"}
        )

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(10)
        return web.Response(text="too late", content_type="text/plain")

    async def drip(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/plain"})
        await resp.prepare(request)
        for _ in range(100):
            await resp.write(b"x")
            await asyncio.sleep(0.1)
        return resp

    async def image(request: web.Request) -> web.Response:
        return web.Response(body=b"\x89PNG\r\n\x1a\n" + b"\0" * 100, content_type="image/png")

    async def gbk(request: web.Request) -> web.Response:
        html = "<html><body><p>网关重试下一个渠道。</p></body></html>"
        return web.Response(
            body=html.encode("gbk"), headers={"Content-Type": "text/html; charset=GBK"}
        )

    async def meta_gbk(request: web.Request) -> web.Response:
        html = '<html><head><meta charset="gb2312"></head><body><p>中文页面</p></body></html>'
        return web.Response(body=html.encode("gbk"), headers={"Content-Type": "text/html"})

    async def status404(request: web.Request) -> web.Response:
        return web.Response(status=404, text="nope", content_type="text/html")

    app = web.Application()
    app.router.add_get("/page", page)
    app.router.add_get("/whoami", whoami)
    app.router.add_get("/plain", plain)
    app.router.add_get("/redirect", redirect)
    app.router.add_get("/chain/{n}", chain)
    app.router.add_get("/big", big)
    app.router.add_get("/bomb", bomb)
    app.router.add_get("/slow", slow)
    app.router.add_get("/drip", drip)
    app.router.add_get("/image", image)
    app.router.add_get("/gbk", gbk)
    app.router.add_get("/meta-gbk", meta_gbk)
    app.router.add_get("/missing", status404)
    return app


def _private_app(srv: Servers) -> web.Application:
    async def anything(request: web.Request) -> web.Response:
        srv.private_hits.append(request.path)
        return web.Response(text="private server: secret", content_type="text/plain")

    app = web.Application()
    app.router.add_get("/{tail:.*}", anything)
    return app


@pytest.fixture(scope="module")
async def servers() -> AsyncIterator[Servers]:
    """Both servers on one port (the public one picks it, the private one follows)."""
    for _ in range(20):
        srv = Servers(port=0)
        pub = web.AppRunner(_public_app(srv), access_log=None, shutdown_timeout=0.2)
        await pub.setup()
        site = web.TCPSite(pub, PUBLIC_IP, 0)
        await site.start()
        srv.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        priv = web.AppRunner(_private_app(srv), access_log=None, shutdown_timeout=0.2)
        await priv.setup()
        try:
            await web.TCPSite(priv, PRIVATE_IP, srv.port).start()
        except OSError:  # that port is taken on 127.0.0.1: try another
            await pub.cleanup()
            await priv.cleanup()
            continue
        try:
            yield srv
        finally:
            await pub.cleanup()
            await priv.cleanup()
        return
    pytest.fail("no port free on both 127.0.0.1 and 127.0.0.2")


@pytest.fixture(autouse=True)
def _clear(request: pytest.FixtureRequest) -> None:
    if "servers" in request.fixturenames:
        srv: Servers = request.getfixturevalue("servers")
        srv.private_hits.clear()
        srv.seen_headers.clear()


class FlipResolver:
    """A DNS server under an attacker's control: its answers change from call to call."""

    def __init__(self, *answers: Sequence[str]) -> None:
        self.answers = list(answers)
        self.calls: list[str] = []

    async def __call__(self, host: str) -> list[str]:
        self.calls.append(host)
        i = min(len(self.calls), len(self.answers)) - 1
        return list(self.answers[i])


def _fetcher(*, resolver: FlipResolver | None = None, **settings: object) -> PageFetcher:
    return PageFetcher(
        OnlineSettings(**settings),  # type: ignore[arg-type]
        resolver=resolver,
        is_public=_test_is_public,
    )


# --- the address policy ----------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "224.0.0.1",
        "255.255.255.255",
        "192.0.0.8",
        "198.18.0.1",
        "::1",
        "::",
        "fe80::1",
        "fe80::1%eth0",
        "fd00::1",
        "fec0::1",
        "ff02::1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "::127.0.0.1",
        "2002:7f00:1::",  # 6to4 of 127.0.0.1
        "2002:a9fe:a9fe::",  # 6to4 of 169.254.169.254
        "64:ff9b::a00:1",  # NAT64 of 10.0.0.1
        "64:ff9b:1::1",
        "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo
        "2001:db8::1",
    ],
)
def test_private_addresses_are_not_public(address: str) -> None:
    assert not is_public_address(ipaddress.ip_address(address))


@pytest.mark.parametrize(
    "address", ["8.8.8.8", "1.1.1.1", "2606:4700::1111", "::ffff:8.8.8.8", "2002:808:808::"]
)
def test_public_addresses_are_public(address: str) -> None:
    assert is_public_address(ipaddress.ip_address(address))


@pytest.mark.parametrize(
    ("host", "address"),
    [
        ("2130706433", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("0x7f000001", "127.0.0.1"),
        ("0xa9.0xfe.0xa9.0xfe", "169.254.169.254"),
        ("0", "0.0.0.0"),
        ("[::ffff:7f00:1]", "::ffff:7f00:1"),
        ("example.com", None),
        ("1.2.3.4.5", None),
        ("256.1.1.1", None),
        ("08.1.1.1", None),  # not octal, not decimal: a name, left to the resolver
    ],
)
def test_ip_hosts_in_legacy_forms(host: str, address: str | None) -> None:
    ip = parse_ip_host(host)
    assert (str(ip) if ip else None) == address


# --- refusals --------------------------------------------------------------------


async def test_loopback_refused_by_default(servers: Servers) -> None:
    fetcher = PageFetcher(OnlineSettings())  # the real policy and the system resolver
    assert await fetcher.fetch(servers.private("/secret")) is None
    assert await fetcher.fetch(servers.public("/page")) is None  # 127.0.0.2 is loopback too
    assert await fetcher.fetch(f"http://localhost:{servers.port}/secret") is None
    assert fetcher.stats.refused == 3
    assert servers.private_hits == []


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "[::1]",
        "[::ffff:127.0.0.1]",
        "[::ffff:7f00:1]",
        "2130706433",
        "0x7f.1",
        "0177.0.0.1",
        "127.1",
        "0x7f000001",
        "127.0.0.1.",
        "１２７.０.０.１",  # fullwidth digits: IDNA makes them 127.0.0.1
        "①②⑦.0.0.1",
        "0.0.0.0",
        "0",
        "[::]",
        "[fe80::1%25lo]",
        "[2002:7f00:1::]",
        "[64:ff9b::7f00:1]",
        "10.0.0.1",
        "169.254.169.254",
        "[fd00::1]",
    ],
)
async def test_literal_private_hosts_refused(servers: Servers, host: str) -> None:
    fetcher = _fetcher()
    started = time.monotonic()
    assert await fetcher.fetch(f"http://{host}:{servers.port}/secret") is None
    assert fetcher.stats.refused == 1, fetcher.stats
    assert time.monotonic() - started < 1  # refused before any connection attempt
    assert servers.private_hits == []


@pytest.mark.parametrize(
    "url",
    [
        "ftp://{ip}:{port}/page",
        "file:///etc/passwd",
        "gopher://{ip}:{port}/",
        "http://user:pw@{ip}:{port}/page",
        "http://user@{ip}:{port}/page",
        "http://@{ip}:{port}/page",
        "http://{ip}:99999/page",
        "not a url",
        "",
        "http:///page",
        "http://{ip}:{port}/" + "a" * 5000,
    ],
)
async def test_bad_urls_refused(servers: Servers, url: str) -> None:
    fetcher = _fetcher()
    assert await fetcher.fetch(url.format(ip=PUBLIC_IP, port=servers.port)) is None
    assert fetcher.stats.refused == 1, fetcher.stats


async def test_public_page_fetched_plainly(servers: Servers) -> None:
    fetcher = _fetcher()
    page = await fetcher.fetch(servers.public("/page"))
    assert page is not None
    assert page.content_type == "text/html"
    assert "How the relay retries" in page.text
    assert not page.truncated
    assert fetcher.stats.refused == fetcher.stats.failed == 0
    assert await fetcher.fetch(servers.public("/page")) is not None
    first, second = servers.seen_headers
    assert first["User-Agent"] == USER_AGENT and "relaygate" in USER_AGENT
    assert "Cookie" not in second  # the cookie set by the first answer is not kept


async def test_proxy_environment_ignored(servers: Servers, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    assert await _fetcher().fetch(servers.public("/whoami")) is not None


async def test_redirect_to_private_refused(servers: Servers) -> None:
    fetcher = _fetcher()
    for target in (
        servers.private("/secret"),
        f"http://2130706433:{servers.port}/secret",
        f"http://[::ffff:127.0.0.1]:{servers.port}/secret",
        f"http://localhost:{servers.port}/secret",
        "file:///etc/passwd",
        f"http://user:pw@{PUBLIC_IP}:{servers.port}/page",
    ):
        url = servers.public("/redirect") + "?to=" + target.replace("&", "%26")
        assert await fetcher.fetch(url) is None, target
    assert fetcher.stats.refused == 6, fetcher.stats
    assert servers.private_hits == []


async def test_redirects_counted(servers: Servers) -> None:
    fetcher = _fetcher()
    page = await fetcher.fetch(servers.public("/chain/5"))  # five redirects: allowed
    assert page is not None and page.text == "end of chain"
    assert page.url == servers.public("/chain/0")
    assert await fetcher.fetch(servers.public("/chain/6")) is None
    assert fetcher.stats.refused == 1


async def test_rebinding_dns_refused(servers: Servers) -> None:
    """The name first answers the public address, then the private one. The fetch that
    checked the public answer connects to it (one lookup); the next lookup is refused."""
    resolver = FlipResolver([PUBLIC_IP], [PRIVATE_IP])
    fetcher = _fetcher(resolver=resolver)
    page = await fetcher.fetch(f"http://rebind.test:{servers.port}/whoami")
    assert page is not None and page.text == "public server"
    assert resolver.calls == ["rebind.test"]  # no second lookup between check and connect
    assert await fetcher.fetch(f"http://rebind.test:{servers.port}/whoami") is None
    assert fetcher.stats.refused == 1
    assert servers.private_hits == []


async def test_rebinding_on_redirect_refused(servers: Servers) -> None:
    """The first hop's lookup answers the public address; the redirect goes to the same
    name, whose next lookup answers the private one: that hop is refused."""
    resolver = FlipResolver([PUBLIC_IP], [PRIVATE_IP])
    fetcher = _fetcher(resolver=resolver)
    url = f"http://rebind.test:{servers.port}/redirect?to=http://rebind.test:{servers.port}/secret"
    assert await fetcher.fetch(url) is None
    assert resolver.calls == ["rebind.test", "rebind.test"]
    assert fetcher.stats.refused == 1
    assert servers.private_hits == []


@pytest.mark.parametrize(
    "answer",
    [
        [PUBLIC_IP, PRIVATE_IP],  # mixed: refused whole
        [PRIVATE_IP],
        ["10.0.0.7"],
        ["::1"],
        ["::ffff:127.0.0.1"],
        ["169.254.169.254"],
        ["not-an-address"],
    ],
)
async def test_names_resolving_to_private_refused(servers: Servers, answer: list[str]) -> None:
    fetcher = _fetcher(resolver=FlipResolver(answer))
    assert await fetcher.fetch(f"http://intranet.test:{servers.port}/secret") is None
    assert fetcher.stats.refused == 1, fetcher.stats
    assert servers.private_hits == []


async def test_resolver_failure_is_a_failure(servers: Servers) -> None:
    fetcher = _fetcher(resolver=FlipResolver([]))
    assert await fetcher.fetch(f"http://nowhere.test:{servers.port}/") is None
    assert fetcher.stats.failed == 1 and fetcher.stats.refused == 0


# --- caps --------------------------------------------------------------------------


async def test_oversize_body_cut(servers: Servers) -> None:
    fetcher = _fetcher(fetch_max_bytes=10_001)
    started = time.monotonic()
    page = await fetcher.fetch(servers.public("/big"))
    assert page is not None and page.truncated
    assert page.text == "é" * 5000  # 10 000 bytes; the half character at the cut is dropped
    assert time.monotonic() - started < 2


async def test_compressed_bomb_cut(servers: Servers) -> None:
    assert len(BOMB) < 100_000
    fetcher = _fetcher(fetch_max_bytes=10_000)
    started = time.monotonic()
    page = await fetcher.fetch(servers.public("/bomb"))
    assert page is not None and page.truncated and len(page.text) == 10_000
    assert time.monotonic() - started < 2


async def test_slow_server_times_out(servers: Servers) -> None:
    fetcher = _fetcher(fetch_timeout=0.5)
    for path in ("/slow", "/drip"):
        started = time.monotonic()
        assert await fetcher.fetch(servers.public(path)) is None
        assert time.monotonic() - started < 1.5, path
    assert fetcher.stats.timed_out == 2


async def test_only_text_content(servers: Servers) -> None:
    fetcher = _fetcher()
    assert await fetcher.fetch(servers.public("/image")) is None
    assert await fetcher.fetch(servers.public("/missing")) is None
    assert fetcher.stats.failed == 2
    page = await fetcher.fetch(servers.public("/plain"))
    assert page is not None and page.content_type == "text/plain"


async def test_charsets(servers: Servers) -> None:
    fetcher = _fetcher()
    page = await fetcher.fetch(servers.public("/gbk"))
    assert page is not None and "网关重试下一个渠道" in page.text and page.charset == "gb18030"
    page = await fetcher.fetch(servers.public("/meta-gbk"))
    assert page is not None and "中文页面" in page.text


def test_decode_body_rules() -> None:
    assert decode_body(b"\xef\xbb\xbfhi", "latin-1", "text/html", complete=True) == (
        "hi",
        "utf-8-sig",
    )
    assert decode_body("é".encode(), None, "text/plain", complete=True)[0] == "é"
    assert decode_body(b"caf\xe9", "iso-8859-1", "text/plain", complete=True)[0] == "café"
    assert decode_body(b"a\xff", "base64", "text/plain", complete=True) == ("a\ufffd", "utf-8")
    assert decode_body(b"a\xff", "no-such-codec", "text/html", complete=True)[1] == "utf-8"
    assert decode_body("ab€".encode()[:-1], None, "text/plain", complete=False)[0] == "ab"


async def test_allow_private_lets_it_through(servers: Servers) -> None:
    fetcher = PageFetcher(OnlineSettings(allow_private=True))
    page = await fetcher.fetch(servers.private("/secret"))
    assert page is not None and page.text == "private server: secret"
    url = servers.public("/redirect") + "?to=" + servers.private("/after-redirect")
    assert (await fetcher.fetch(url)) is not None
    rebind = PageFetcher(OnlineSettings(allow_private=True), resolver=FlipResolver([PRIVATE_IP]))
    assert await rebind.fetch(f"http://intranet.test:{servers.port}/named") is not None
    assert await fetcher.fetch(f"http://2130706433:{servers.port}/legacy") is not None
    assert servers.private_hits == ["/secret", "/after-redirect", "/named", "/legacy"]
    # still refused with allow_private: other schemes and credentials
    assert await fetcher.fetch("file:///etc/passwd") is None
    assert await fetcher.fetch(f"http://u:p@{PRIVATE_IP}:{servers.port}/x") is None


# --- fetch_many ----------------------------------------------------------------------


def _hit(url: str, text: str = "") -> Hit:
    return Hit(url=url, title="t", snippet="s", source="test", text=text)


async def test_fetch_many_fills_text_and_counts(servers: Servers) -> None:
    fetcher = _fetcher(fetch_timeout=0.8)
    hits = [
        _hit(servers.public("/page")),
        _hit(servers.private("/secret")),
        _hit(servers.public("/image")),
        _hit(servers.public("/slow")),
        _hit(servers.public("/plain")),
        _hit(servers.public("/gbk")),
        _hit("http://example.invalid/", text="already known"),
    ]
    loop = asyncio.get_running_loop()
    stats = await fetcher.fetch_many(hits, loop.time() + 5)
    assert "How the relay retries" in hits[0].text
    assert "Buy cheap watches" not in hits[0].text and "About us" not in hits[0].text
    assert [h.text for h in hits[1:4]] == ["", "", ""]
    assert hits[4].text == "just plain\n\ntext"
    assert "网关重试下一个渠道" in hits[5].text
    assert hits[6].text == "already known"  # not fetched again
    assert (stats.fetched, stats.refused, stats.failed, stats.timed_out) == (3, 1, 1, 1)
    assert servers.private_hits == []


async def test_fetch_many_stops_at_the_deadline(servers: Servers) -> None:
    fetcher = _fetcher(fetch_timeout=5)
    hits = [_hit(servers.public("/slow")) for _ in range(6)] + [_hit(servers.public("/plain"))]
    loop = asyncio.get_running_loop()
    started = time.monotonic()
    stats = await fetcher.fetch_many(hits, loop.time() + 0.5)
    assert time.monotonic() - started < 1.5
    assert stats.timed_out == 7 - stats.fetched
    assert all(h.text == "" for h in hits[:6])
    assert await fetcher.fetch_many([], loop.time() + 1) == type(stats)()
