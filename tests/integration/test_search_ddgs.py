"""The ddgs backend with the real ``ddgs`` package, pointed by its ``proxy=``/``verify=``
arguments at a loopback DuckDuckGo stand-in (emulator/search_ddg.py) that terminates TLS
with a test CA: what ddgs sends, how its answers map, and its failures. Real DuckDuckGo
is not reachable here (no internet): its live markup and rate limiting are not tested."""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from relaygate.emulator.search_ddg import DuckDuckGoProxy
from relaygate.online.base import SearchFailed
from relaygate.online.ddgs_backend import DdgsBackend


@pytest.fixture(scope="module")
def ca_pem(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[trustme.CA, str]]:
    ca = trustme.CA()
    pem = tmp_path_factory.mktemp("ddg") / "ca.pem"
    ca.cert_pem.write_to_path(str(pem))
    yield ca, str(pem)


@pytest.fixture(scope="module")
def proxy(ca_pem: tuple[trustme.CA, str]) -> Iterator[DuckDuckGoProxy]:
    ca, _ = ca_pem
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("html.duckduckgo.com").configure_cert(ctx)
    with DuckDuckGoProxy(ctx) as p:
        yield p


@pytest.fixture
def ddg(proxy: DuckDuckGoProxy) -> Iterator[DuckDuckGoProxy]:
    proxy.status, proxy.delay, proxy.refuse_connect = 200, 0.0, False
    proxy.requests.clear()
    yield proxy
    proxy.status, proxy.delay, proxy.refuse_connect = 200, 0.0, False


def _backend(
    ddg: DuckDuckGoProxy, pem: str, *, timeout: float = 5.0, proxy: str = ""
) -> DdgsBackend:
    return DdgsBackend(timeout=timeout, proxy=proxy or ddg.url, verify=pem, engine="duckduckgo")


async def test_real_ddgs_through_the_proxy(
    ddg: DuckDuckGoProxy, ca_pem: tuple[trustme.CA, str]
) -> None:
    backend = _backend(ddg, ca_pem[1])
    try:
        hits = await backend.search("relaygate routing", k=3, lang="zh-CN", recency_days=60)
    finally:
        await backend.close()
    urls = [h.url for h in hits]
    assert "https://relaygate.example.org/docs/routing" in urls
    assert len(hits) <= 3 and all(h.source == "ddgs" for h in hits)
    routing = hits[urls.index("https://relaygate.example.org/docs/routing")]
    assert routing.title == "Routing channels by priority and weight"
    assert routing.snippet.startswith("The router orders channels")
    host, method, path, form = ddg.requests[-1]
    assert (host, method, path) == ("html.duckduckgo.com", "POST", "/html/")
    assert form["q"] == "relaygate routing" and form["l"] == "cn-zh" and form["df"] == "y"


async def test_domains_go_in_the_query(
    ddg: DuckDuckGoProxy, ca_pem: tuple[trustme.CA, str]
) -> None:
    backend = _backend(ddg, ca_pem[1])
    try:
        hits = await backend.search("网关", k=5, domains=("example.cn",))
    finally:
        await backend.close()
    assert ddg.requests[-1][3]["q"] == "网关 site:example.cn"
    assert [h.url for h in hits] == ["https://zh.example.cn/gateway"]


async def test_no_match_is_no_hits(ddg: DuckDuckGoProxy, ca_pem: tuple[trustme.CA, str]) -> None:
    backend = _backend(ddg, ca_pem[1])
    try:
        assert await backend.search("zzqxv nothing", k=5) == []
    finally:
        await backend.close()


async def test_an_error_status_is_no_hits(
    ddg: DuckDuckGoProxy, ca_pem: tuple[trustme.CA, str]
) -> None:
    """ddgs treats a non-200 page (DuckDuckGo's 202/403/429 throttling) as "no results":
    the backend cannot tell it from an empty answer."""
    ddg.status = 429
    backend = _backend(ddg, ca_pem[1])
    try:
        assert await backend.search("relaygate", k=5) == []
    finally:
        await backend.close()


async def test_slow_answer_times_out(ddg: DuckDuckGoProxy, ca_pem: tuple[trustme.CA, str]) -> None:
    ddg.delay = 3.0
    backend = _backend(ddg, ca_pem[1], timeout=0.5)
    started = time.monotonic()
    try:
        with pytest.raises(SearchFailed) as info:
            await backend.search("relaygate", k=5)
    finally:
        await backend.close()
    assert info.value.kind == "timeout"
    assert time.monotonic() - started < 1.5


async def test_proxy_refusing_connect(ddg: DuckDuckGoProxy, ca_pem: tuple[trustme.CA, str]) -> None:
    ddg.refuse_connect = True
    url = ddg.url.replace("http://", "http://user:pw-SECRET-42@")
    backend = _backend(ddg, ca_pem[1], proxy=url)
    try:
        with pytest.raises(SearchFailed) as info:
            await backend.search("relaygate", k=5)
    finally:
        await backend.close()
    assert info.value.kind == "error"
    assert "pw-SECRET-42" not in str(info.value)
    assert str(info.value).startswith("ddgs: ")


async def test_untrusted_certificate_is_refused(ddg: DuckDuckGoProxy) -> None:
    backend = DdgsBackend(timeout=5, proxy=ddg.url, engine="duckduckgo")  # system CAs only
    try:
        with pytest.raises(SearchFailed) as info:
            await backend.search("relaygate", k=5)
    finally:
        await backend.close()
    assert info.value.kind == "error"


async def test_closed_port(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    backend = DdgsBackend(timeout=5, proxy=f"http://127.0.0.1:{port}", engine="duckduckgo")
    try:
        with pytest.raises(SearchFailed) as info:
            await backend.search("relaygate", k=5)
    finally:
        await backend.close()
    assert info.value.kind == "error" and "Connect" in str(info.value)
