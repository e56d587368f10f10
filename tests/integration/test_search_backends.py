"""Each remote search backend against the emulator of its documented API (real aiohttp
servers on loopback): hits mapped, domains/recency/language passed as the API expects,
and every failure (bad key, rate limit, 5xx, slow, hung, malformed JSON, refused
connection, SearXNG without its json format) a SearchFailed whose message never holds
the key."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from relaygate.emulator import EmulatorServer, Knobs
from relaygate.online.base import SearchBackend, SearchFailed
from relaygate.online.bocha import BochaBackend
from relaygate.online.google_pse import GooglePSEBackend
from relaygate.online.http import BackendHTTPError
from relaygate.online.searxng import SearxngBackend
from relaygate.online.tavily import TavilyBackend

KEYS = {
    "searxng": "",
    "tavily": "tvly-SECRET-key-0123456789",
    "bocha": "sk-bocha-SECRET-abcdef",
    "google": "AIzaSECRETgoogleKey987",
}
NAMES = tuple(KEYS)


@dataclass
class Engine:
    name: str
    emu: EmulatorServer

    def backend(self, *, key: str | None = None, timeout: float = 3.0) -> SearchBackend:
        key = KEYS[self.name] if key is None else key
        url = self.emu.origin
        if self.name == "searxng":
            return SearxngBackend(url, timeout=timeout)
        if self.name == "tavily":
            return TavilyBackend(key, url=url, timeout=timeout)
        if self.name == "bocha":
            return BochaBackend(key, url=url, timeout=timeout)
        return GooglePSEBackend(key, "cx-test", url=url, timeout=timeout)

    def sent(self) -> Any:
        """What the backend sent: the query string (GET APIs) or the JSON body."""
        last = self.emu.stats.last_request
        assert last is not None
        return dict(last.query) if last.method == "GET" else last.body

    def control(self, **changes: bool) -> None:
        impl: Any = self.emu.impl
        for name, value in changes.items():
            setattr(impl, name, value)


@pytest.fixture(scope="module")
def engines() -> Iterator[dict[str, Engine]]:
    servers = {
        name: EmulatorServer(name, knobs=Knobs(api_key=key or None)) for name, key in KEYS.items()
    }
    for srv in servers.values():
        srv.start()
    try:
        yield {name: Engine(name, srv) for name, srv in servers.items()}
    finally:
        for srv in servers.values():
            srv.stop()


@pytest.fixture(params=NAMES)
def engine(request: pytest.FixtureRequest, engines: dict[str, Engine]) -> Iterator[Engine]:
    eng = engines[request.param]
    eng.emu.reset()
    eng.control(malformed=False, json_format=True)
    yield eng
    eng.emu.reset()
    eng.control(malformed=False, json_format=True)


def _secret_free(exc: SearchFailed, name: str) -> None:
    key = KEYS[name]
    text = str(exc) + repr(exc.args)
    if key:
        assert key not in text
        assert key[4:12] not in text
    assert text.startswith(name + ":") or repr(exc.args).startswith(f"('{name}:")


# -- answers ------------------------------------------------------------------------------


async def test_hits_are_mapped(engine: Engine) -> None:
    backend = engine.backend()
    try:
        hits = await backend.search("relaygate routing priority", k=5)
    finally:
        await backend.close()
    assert hits, engine.name
    assert hits[0].url == "https://relaygate.example.org/docs/routing"
    assert hits[0].title == "Routing channels by priority and weight"
    assert "priority tiers" in hits[0].snippet
    assert all(h.source == engine.name for h in hits)
    assert all(h.url.startswith("https://") for h in hits)
    if engine.name in ("searxng", "bocha", "google"):
        assert hits[0].published and hits[0].published[:4].isdigit()
    if engine.name in ("searxng", "tavily"):
        assert hits[0].score is not None and hits[0].score > 0
    if engine.name == "bocha":  # summary asked for: the long text
        assert hits[0].text.startswith("The router orders channels")


async def test_chinese_query(engine: Engine) -> None:
    backend = engine.backend()
    try:
        hits = await backend.search("大模型网关", k=3)
    finally:
        await backend.close()
    assert hits[0].url == "https://zh.example.cn/gateway"
    assert hits[0].title == "大模型网关简介"


async def test_k_is_respected_and_capped(engine: Engine) -> None:
    backend = engine.backend()
    try:
        assert len(await backend.search("search", k=2)) <= 2
        many = await backend.search("search relaygate LLM gateway", k=60)
    finally:
        await backend.close()
    assert 2 < len(many) <= 10
    sent = engine.sent()
    if engine.name == "google":
        assert sent["num"] == "10"  # the API refuses more than 10
    elif engine.name == "tavily":
        assert sent["max_results"] == 20
    elif engine.name == "bocha":
        assert sent["count"] == 50


async def test_domains_are_passed(engine: Engine) -> None:
    backend = engine.backend()
    try:
        hits = await backend.search("search 搜索", k=5, domains=("example.cn",))
        both = await backend.search("search 网关", k=9, domains=("example.cn", "example.io"))
    finally:
        await backend.close()
    assert hits and all(h.url.startswith("https://zh.example.cn/") for h in hits)
    assert {h.url.split("/")[2] for h in both} <= {"zh.example.cn", "docs.example.io"}
    assert "docs.example.io" in {h.url.split("/")[2] for h in both}
    sent = engine.sent()
    if engine.name == "searxng":
        assert "(site:example.cn OR site:example.io)" in sent["q"]
    elif engine.name == "tavily":
        assert sent["include_domains"] == ["example.cn", "example.io"]
    elif engine.name == "bocha":
        assert sent["include"] == "example.cn|example.io"
    else:
        assert "site:example.cn" in sent["q"]


async def test_one_domain_google_uses_site_search(engines: dict[str, Engine]) -> None:
    eng = engines["google"]
    backend = eng.backend()
    try:
        hits = await backend.search("gateway", k=5, domains=("news.example.com",))
    finally:
        await backend.close()
    sent = eng.sent()
    assert sent["siteSearch"] == "news.example.com" and sent["siteSearchFilter"] == "i"
    assert sent["q"] == "gateway"
    assert [h.url for h in hits] == ["https://news.example.com/2026/llm-gateways"]


async def test_recency_is_passed(engine: Engine) -> None:
    backend = engine.backend()
    try:
        recent = await backend.search("relaygate routing search", k=10, recency_days=7)
        old = await backend.search("relaygate routing search", k=10)
    finally:
        await backend.close()
    sent = engine.sent()  # the second request: no recency
    assert "https://relaygate.example.org/docs/routing" in {h.url for h in old}
    assert "https://relaygate.example.org/docs/routing" not in {h.url for h in recent}
    assert "https://relaygate.example.org/docs/online" in {h.url for h in recent}
    recorded = [r for r in engine.emu.stats.recorded]
    first = dict(recorded[-2].query) if recorded[-2].method == "GET" else recorded[-2].body
    expected = {
        "searxng": ("time_range", "week"),
        "tavily": ("time_range", "week"),
        "bocha": ("freshness", "oneWeek"),
        "google": ("dateRestrict", "d7"),
    }[engine.name]
    assert first[expected[0]] == expected[1]
    assert expected[0] not in sent or sent[expected[0]] == "noLimit"


async def test_language_is_passed(engines: dict[str, Engine]) -> None:
    for name, field, value in (("searxng", "language", "zh"), ("google", "lr", "lang_zh-CN")):
        eng = engines[name]
        backend = eng.backend()
        try:
            hits = await backend.search("网关 gateway", k=5, lang="zh")
        finally:
            await backend.close()
        assert eng.sent()[field] == value
        assert hits and all(h.url.startswith("https://zh.example.cn/") for h in hits)


async def test_no_match_is_no_hits_and_empty_query_sends_nothing(engine: Engine) -> None:
    backend = engine.backend()
    try:
        assert await backend.search("zzqxv nothingmatches", k=5) == []
        before = engine.emu.stats.requests
        assert await backend.search("   ", k=5) == []
        assert await backend.search("relaygate", k=0) == []
        assert engine.emu.stats.requests == before
    finally:
        await backend.close()


async def test_hostile_queries(engine: Engine) -> None:
    backend = engine.backend()
    try:
        for q in ('"quoted" AND (x OR y) -z *', "a" * 20_000, "\x00\u202e%00&key=1", "site:"):
            try:
                hits = await backend.search(q, k=3)
            except SearchFailed as exc:  # an API may refuse it: then with its own words
                _secret_free(exc, engine.name)
            else:
                assert isinstance(hits, list)
    finally:
        await backend.close()


# -- failures -----------------------------------------------------------------------------


async def _fails(engine: Engine, *, limit: float = 3.0, key: str | None = None) -> SearchFailed:
    backend = engine.backend(timeout=limit, key=key)
    try:
        with pytest.raises(SearchFailed) as info:
            await backend.search("relaygate", k=3)
    finally:
        await backend.close()
    _secret_free(info.value, engine.name)
    return info.value


@pytest.mark.parametrize("name", ["tavily", "bocha", "google"])
async def test_bad_key(engines: dict[str, Engine], name: str) -> None:
    eng = engines[name]
    eng.emu.reset()
    exc = await _fails(eng, key="wrong-key-but-long-SECRET")
    assert exc.kind == "error"
    assert isinstance(exc, BackendHTTPError)
    assert exc.status == {"tavily": 401, "bocha": 401, "google": 400}[name]
    assert "SECRET" not in str(exc)
    words = {"tavily": "invalid API key", "bocha": "Invalid API KEY", "google": "API key not valid"}
    assert words[name] in str(exc)


@pytest.mark.parametrize("status", [429, 500, 503])
async def test_http_errors(engine: Engine, status: int) -> None:
    engine.emu.configure(fail_status=status, retry_after=3)
    exc = await _fails(engine)
    assert exc.kind == "error"
    assert isinstance(exc, BackendHTTPError) and exc.status == status
    assert f"HTTP {status}" in str(exc)
    assert len(str(exc)) < 260


async def test_rate_limit_in_the_api_words(engine: Engine) -> None:
    engine.emu.configure(fail_status=429)
    exc = await _fails(engine)
    words = {
        "searxng": "rate limited",
        "tavily": "excessive requests",
        "bocha": "request limit",
        "google": "RESOURCE_EXHAUSTED",
    }
    assert words[engine.name] in str(exc)


async def test_plan_limits_tavily(engines: dict[str, Engine]) -> None:
    eng = engines["tavily"]
    eng.emu.reset()
    for status, word in ((432, "plan"), (433, "pay-as-you-go")):
        eng.emu.configure(fail_status=status)
        exc = await _fails(eng)
        assert isinstance(exc, BackendHTTPError) and exc.status == status and word in str(exc)


async def test_slow_answer_times_out(engine: Engine) -> None:
    engine.emu.configure(latency_ms=2000)
    exc = await _fails(engine, limit=0.3)
    assert exc.kind == "timeout"
    assert "0.3 s" in str(exc)


async def test_hung_answer_times_out(engine: Engine) -> None:
    engine.emu.configure(hang=True)
    exc = await _fails(engine, limit=0.3)
    assert exc.kind == "timeout"
    engine.emu.core.release_hangs()


async def test_malformed_json(engine: Engine) -> None:
    engine.control(malformed=True)
    exc = await _fails(engine)
    assert exc.kind == "error" and "not valid JSON" in str(exc)


async def test_searxng_without_json_format(engines: dict[str, Engine]) -> None:
    eng = engines["searxng"]
    eng.emu.reset()
    eng.control(json_format=False)
    try:
        exc = await _fails(eng)
    finally:
        eng.control(json_format=True)
    assert isinstance(exc, BackendHTTPError) and exc.status == 403
    assert "json format" in str(exc)


async def test_error_code_in_a_200_bocha_body(engines: dict[str, Engine]) -> None:
    """A query ``error-NNN`` makes the emulators answer that status; Bocha's body code."""
    eng = engines["bocha"]
    eng.emu.reset()
    backend = eng.backend()
    try:
        with pytest.raises(BackendHTTPError) as info:
            await backend.search("error-403", k=3)
    finally:
        await backend.close()
    assert info.value.status == 403 and "not have enough money" in str(info.value)


async def test_refused_connection(engines: dict[str, Engine]) -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for name in NAMES:
        url = f"http://127.0.0.1:{port}"
        key = KEYS[name]
        backend: SearchBackend
        if name == "searxng":
            backend = SearxngBackend(url, timeout=2)
        elif name == "tavily":
            backend = TavilyBackend(key, url=url, timeout=2)
        elif name == "bocha":
            backend = BochaBackend(key, url=url, timeout=2)
        else:
            backend = GooglePSEBackend(key, "cx", url=url, timeout=2)
        try:
            with pytest.raises(SearchFailed) as info:
                await backend.search("relaygate", k=3)
        finally:
            await backend.close()
        assert info.value.kind == "error" and "cannot connect" in str(info.value)
        _secret_free(info.value, name)


async def test_session_is_reused_and_reopened_after_close(engine: Engine) -> None:
    backend = engine.backend()
    try:
        await backend.search("relaygate", k=1)
        await backend.search("relaygate", k=1)
        await backend.close()
        assert await backend.search("relaygate", k=1)  # a closed backend opens again
    finally:
        await backend.close()
