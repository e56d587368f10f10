"""make_backend (online/backends.py), the shared HTTP helpers (online/http.py), the
request each remote backend builds, and the ddgs backend with stand-in search functions
(its thread, its timeout, its error mapping)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from ddgs.exceptions import DDGSException, RatelimitException, TimeoutException

from relaygate.online.backends import BACKENDS, make_backend
from relaygate.online.base import Hit, OnlineSettings, SearchFailed
from relaygate.online.bocha import BochaBackend, freshness
from relaygate.online.ddgs_backend import DdgsBackend, ddgs_region
from relaygate.online.google_pse import GooglePSEBackend, google_lr
from relaygate.online.http import keep_domains, recency_window, sanitize, site_query
from relaygate.online.local_index import LocalIndex
from relaygate.online.searxng import SearxngBackend
from relaygate.online.tavily import TavilyBackend

# -- make_backend -------------------------------------------------------------------------


async def test_each_backend_is_built(tmp_path: Path) -> None:
    made = {
        "local": make_backend(OnlineSettings(backend="local"), tmp_path),
        "searxng": make_backend(OnlineSettings(backend="searxng", url="http://s:8888/"), tmp_path),
        "tavily": make_backend(OnlineSettings(backend="tavily", key="k"), tmp_path),
        "bocha": make_backend(OnlineSettings(backend="bocha", key="k"), tmp_path),
        "google": make_backend(OnlineSettings(backend="google", key="k", cx="c"), tmp_path),
        "ddgs": make_backend(OnlineSettings(backend="ddgs"), tmp_path),
    }
    assert make_backend(OnlineSettings(), tmp_path) is None
    assert make_backend(OnlineSettings(backend="OFF"), tmp_path) is None
    assert isinstance(made["local"], LocalIndex)
    assert made["local"].path == str(tmp_path / "search.db")
    assert isinstance(made["searxng"], SearxngBackend) and made["searxng"].url == "http://s:8888"
    assert (
        isinstance(made["tavily"], TavilyBackend) and made["tavily"].url == "https://api.tavily.com"
    )
    assert (
        isinstance(made["bocha"], BochaBackend) and made["bocha"].url == "https://api.bochaai.com"
    )
    assert isinstance(made["google"], GooglePSEBackend)
    assert made["google"].url == "https://www.googleapis.com"
    assert isinstance(made["ddgs"], DdgsBackend)
    assert {b.name for b in made.values() if b is not None} == set(BACKENDS) - {"off"}
    for backend in made.values():
        assert backend is not None
        await backend.close()


async def test_overrides(tmp_path: Path) -> None:
    local = make_backend(OnlineSettings(backend="local", local_db=str(tmp_path / "x.db")), tmp_path)
    assert isinstance(local, LocalIndex) and local.path == str(tmp_path / "x.db")
    tavily = make_backend(
        OnlineSettings(
            backend="tavily", key="k", url="http://127.0.0.1:9/", extra={"tavily_depth": "advanced"}
        ),
        tmp_path,
    )
    assert isinstance(tavily, TavilyBackend)
    assert tavily.url == "http://127.0.0.1:9" and tavily.search_depth == "advanced"
    ddgs = make_backend(
        OnlineSettings(backend="ddgs", timeout=2, extra={"ddgs_backend": "duckduckgo"}), tmp_path
    )
    assert isinstance(ddgs, DdgsBackend) and ddgs.engine == "duckduckgo" and ddgs.timeout == 2
    for b in (local, tavily, ddgs):
        assert b is not None
        await b.close()


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (OnlineSettings(backend="bing"), "unknown search backend 'bing'"),
        (OnlineSettings(backend="searxng"), "needs RELAYGATE_SEARCH_URL"),
        (OnlineSettings(backend="searxng", url="ftp://x"), "must start with http"),
        (OnlineSettings(backend="searxng", url="s:8888"), "must start with http"),
        (OnlineSettings(backend="tavily"), "'tavily' needs RELAYGATE_SEARCH_KEY"),
        (OnlineSettings(backend="tavily", key="k", url="file:///etc"), "must start with http"),
        (OnlineSettings(backend="bocha", key="  "), "'bocha' needs RELAYGATE_SEARCH_KEY"),
        (OnlineSettings(backend="google", cx="c"), "'google' needs RELAYGATE_SEARCH_KEY"),
        (OnlineSettings(backend="google", key="k"), "RELAYGATE_SEARCH_CX"),
    ],
)
def test_refusals(tmp_path: Path, settings: OnlineSettings, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_backend(settings, tmp_path)


def test_unknown_names_list_the_choices(tmp_path: Path) -> None:
    with pytest.raises(ValueError) as info:
        make_backend(OnlineSettings(backend="duckduckgo"), tmp_path)
    for name in BACKENDS:
        assert name in str(info.value)


# -- helpers ------------------------------------------------------------------------------


def test_sanitize_masks_keys() -> None:
    key = "sk-abc/def+123=="
    text = (
        f"bad key {key} in https://x/customsearch/v1?key=AIzaLEAK&cx=1 "
        f"and sk-abc%2Fdef%2B123%3D%3D and Authorization: Bearer tok-LEAK <b>bold</b> &amp;"
    )
    out = sanitize(text, (key,))
    assert key not in out and "AIzaLEAK" not in out and "tok-LEAK" not in out
    assert "sk-abc%2Fdef" not in out
    assert "<b>" not in out and "&" in out
    assert len(sanitize("x" * 1000)) == 200


def test_windows_and_queries() -> None:
    assert [recency_window(d) for d in (None, 0, 1, 2, 7, 8, 31, 32, 366, 367)] == [
        None, None, "day", "week", "week", "month", "month", "year", "year", None,
    ]  # fmt: skip
    assert site_query("q", ()) == "q"
    assert site_query("q", ("a.com",)) == "q site:a.com"
    assert site_query("q", ("a.com", "b.org")) == "q (site:a.com OR site:b.org)"
    hits = [Hit("https://a.com/x", "t", "s", "x"), Hit("https://ba.com/", "t", "s", "x"),
            Hit("https://sub.a.com/", "t", "s", "x"), Hit("not a url", "t", "s", "x")]  # fmt: skip
    assert [h.url for h in keep_domains(hits, ("a.com",))] == [
        "https://a.com/x",
        "https://sub.a.com/",
    ]
    assert keep_domains(hits, ()) == hits


def test_backend_specific_values() -> None:
    today = datetime(2026, 11, 29, tzinfo=UTC)
    assert freshness(None) == "noLimit"
    assert freshness(7) == "oneWeek" and freshness(365) == "oneYear"
    assert freshness(3, today) == "2026-11-26..2026-11-29"
    assert google_lr("zh") == "lang_zh-CN" and google_lr("zh-TW") == "lang_zh-TW"
    assert google_lr("en-US") == "lang_en"
    assert ddgs_region(None) == "wt-wt" and ddgs_region("zh") == "cn-zh"
    assert ddgs_region("en-GB") == "us-en" and ddgs_region("xx") == "wt-wt"


def test_request_shapes() -> None:
    tavily = TavilyBackend("k")
    assert tavily.payload("q", 50, 3, ("a.com",)) == {
        "query": "q", "max_results": 20, "search_depth": "basic", "topic": "general",
        "include_answer": False, "include_raw_content": False,
        "include_domains": ["a.com"], "time_range": "week",
    }  # fmt: skip
    bocha = BochaBackend("k")
    body = bocha.payload("q", 80, None, tuple(f"d{i}.com" for i in range(30)))
    assert body["count"] == 50 and body["freshness"] == "noLimit" and body["summary"] is True
    assert body["include"].count("|") == 19
    google = GooglePSEBackend("KEY", "CX")
    assert google.params("q", 30, "ja", 3, ()) == {
        "key": "KEY", "cx": "CX", "num": "10", "q": "q", "dateRestrict": "d3", "lr": "lang_ja",
    }  # fmt: skip


# -- ddgs with stand-ins ------------------------------------------------------------------


class StandIn:
    def __init__(
        self, rows: Any = None, *, sleep: float = 0.0, error: Exception | None = None
    ) -> None:
        self.rows = rows if rows is not None else []
        self.sleep = sleep
        self.error = error
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, query: str, **kwargs: Any) -> Any:
        self.calls.append((query, kwargs))
        if self.sleep:
            time.sleep(self.sleep)
        if self.error is not None:
            raise self.error
        return self.rows


async def test_ddgs_maps_rows_and_passes_arguments() -> None:
    fn = StandIn([
        {"title": "<b>One</b>", "href": "https://a.com/1", "body": "first &amp; best"},
        {"title": "", "href": "https://b.org/2", "body": "second"},
        {"title": "ad", "href": "javascript:alert(1)", "body": "x"},
        "not a row",
        {"title": "no href"},
    ])  # fmt: skip
    backend = DdgsBackend(search_fn=fn, engine="duckduckgo", timeout=2)
    try:
        hits = await backend.search("q", k=5, lang="de", recency_days=7)
    finally:
        await backend.close()
    assert [(h.url, h.title, h.snippet) for h in hits] == [
        ("https://a.com/1", "One", "first & best"),
        ("https://b.org/2", "https://b.org/2", "second"),
    ]
    assert fn.calls == [("q", {"region": "de-de", "safesearch": "moderate", "timelimit": "w",
                               "max_results": 5, "backend": "duckduckgo"})]  # fmt: skip


async def test_ddgs_domains() -> None:
    fn = StandIn([{"title": "t", "href": "https://a.com/", "body": "b"},
                  {"title": "t", "href": "https://evil.com/", "body": "b"}])  # fmt: skip
    backend = DdgsBackend(search_fn=fn)
    try:
        hits = await backend.search("q", k=5, domains=("a.com",))
    finally:
        await backend.close()
    assert fn.calls[0][0] == "q site:a.com"
    assert [h.url for h in hits] == ["https://a.com/"]  # what the engine ignored is dropped


async def test_ddgs_slow_search_times_out() -> None:
    backend = DdgsBackend(search_fn=StandIn(sleep=1.5), timeout=0.2)
    started = time.monotonic()
    try:
        with pytest.raises(SearchFailed) as info:
            await backend.search("q", k=3)
    finally:
        await backend.close()
    assert info.value.kind == "timeout" and "0.2 s" in str(info.value)
    assert time.monotonic() - started < 1.0  # the thread is not waited for


async def test_ddgs_many_slow_searches_do_not_block_the_loop() -> None:
    backend = DdgsBackend(search_fn=StandIn(sleep=0.6), timeout=0.1)
    started = time.monotonic()
    try:
        for _ in range(6):  # more than the pool's 4 threads
            with pytest.raises(SearchFailed):
                await backend.search("q", k=3)
    finally:
        await backend.close()
    assert time.monotonic() - started < 2.0


@pytest.mark.parametrize(
    ("error", "kind", "words"),
    [
        (RatelimitException("202 Ratelimit"), "error", "rate limited"),
        (TimeoutException("slow"), "timeout", "did not answer in time"),
        (DDGSException("ConnectError: timed out"), "timeout", "did not answer in time"),
        (DDGSException("ConnectError: refused"), "error", "DDGSException: ConnectError"),
        (RuntimeError("boom via http://u:SECRETpw@proxy:3128"), "error", "RuntimeError: boom"),
    ],
)
async def test_ddgs_errors(error: Exception, kind: str, words: str) -> None:
    backend = DdgsBackend(search_fn=StandIn(error=error), proxy="http://u:SECRETpw@proxy:3128")
    try:
        with pytest.raises(SearchFailed) as info:
            await backend.search("q", k=3)
    finally:
        await backend.close()
    assert info.value.kind == kind and words in str(info.value)
    assert "SECRETpw" not in str(info.value)


async def test_ddgs_no_results_and_odd_answers() -> None:
    empty = DdgsBackend(search_fn=StandIn(error=DDGSException("No results found.")))
    odd = DdgsBackend(search_fn=StandIn(rows={"not": "a list"}))
    never = StandIn()
    unused = DdgsBackend(search_fn=never)
    try:
        assert await empty.search("q", k=3) == []
        with pytest.raises(SearchFailed, match="not a list"):
            await odd.search("q", k=3)
        assert await unused.search("  ", k=3) == [] and await unused.search("q", k=0) == []
        assert never.calls == []
    finally:
        for b in (empty, odd, unused):
            await b.close()
