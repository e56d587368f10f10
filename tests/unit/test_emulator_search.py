"""The search-engine emulators themselves (emulator/search_engines.py, search_apis.py),
spoken to with raw HTTP: each API's validation and error shapes, auth, paging, the control
endpoint, and the corpus matching."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from relaygate.emulator import EmulatorServer, Knobs
from relaygate.emulator.search_common import corpus_search, split_sites


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def _call(
    http: aiohttp.ClientSession, method: str, url: str, **kw: Any
) -> tuple[int, Any, str]:
    async with http.request(method, url, **kw) as resp:
        text = await resp.text()
        body = await resp.json(content_type=None) if "json" in resp.content_type else None
        return resp.status, body, text


def test_corpus_matching() -> None:
    assert split_sites("q site:a.com") == ("q", ("a.com",))
    assert split_sites("q (site:a.com OR site:b.org)") == ("q", ("a.com", "b.org"))
    found = corpus_search("routing priority")
    assert found[0][0].url.endswith("/docs/routing") and found[0][1] == 1.0
    assert corpus_search("") == [] and corpus_search("zzqx") == []
    assert [d.url for d, _ in corpus_search("网关", sites=("example.cn",))] == [
        "https://zh.example.cn/gateway"
    ]
    assert all(d.age_days <= 7 for d, _ in corpus_search("relaygate search", max_age_days=7))


async def test_searxng(http: aiohttp.ClientSession) -> None:
    async with EmulatorServer("searxng") as emu:
        url = emu.origin + "/search"
        status, body, _ = await _call(http, "GET", url, params={"q": "relaygate", "format": "json"})
        assert status == 200 and body["results"] and body["results"][0]["engine"] == "emulated"
        status, body, _ = await _call(
            http, "GET", url, params={"q": "relaygate", "format": "json", "pageno": "2"}
        )
        assert status == 200 and body["results"] == []
        status, _, text = await _call(
            http, "GET", url, params={"q": "x", "format": "json", "time_range": "decade"}
        )
        assert status == 400 and "time_range" in text
        status, _, text = await _call(http, "GET", url, params={"q": "relaygate"})
        assert status == 200 and text.startswith("<html>")  # no format: the HTML page
        async with http.post(emu.origin + "/_emulator/search", json={"json_format": False}) as r:
            assert (await r.json()) == {"malformed": False, "json_format": False}
        status, body, text = await _call(
            http, "GET", url, params={"q": "relaygate", "format": "json"}
        )
        assert status == 403 and body is None and "Forbidden" in text


async def test_tavily(http: aiohttp.ClientSession) -> None:
    async with EmulatorServer("tavily", knobs=Knobs(api_key="tvly-k")) as emu:
        url = emu.origin + "/search"
        auth = {"Authorization": "Bearer tvly-k"}
        status, body, _ = await _call(http, "POST", url, json={"query": "relaygate"})
        assert status == 401 and body == {
            "detail": {"error": "Unauthorized: missing or invalid API key."}
        }
        status, body, _ = await _call(
            http, "POST", url, json={"query": "relaygate", "api_key": "tvly-k"}
        )
        assert status == 200 and body["results"]  # the older key-in-body form
        status, body, _ = await _call(
            http, "POST", url, json={"query": "relaygate", "topic": "news"}, headers=auth
        )
        assert "published_date" in body["results"][0]
        for bad in ({"query": ""}, {"query": "q", "max_results": 21}, {"query": "q", "time_range": "decade"},
                    {"query": "q", "include_domains": "a.com"}, {"query": "q", "days": 0}):  # fmt: skip
            status, body, _ = await _call(http, "POST", url, json=bad, headers=auth)
            assert status == 400 and isinstance(body["detail"]["error"], str), bad
        status, body, _ = await _call(http, "POST", url, data=b"{oops", headers=auth)
        assert status == 400 and "detail" in body


async def test_bocha(http: aiohttp.ClientSession) -> None:
    async with EmulatorServer("bocha", knobs=Knobs(api_key="sk-b")) as emu:
        url = emu.origin + "/v1/web-search"
        status, body, _ = await _call(http, "POST", url, json={"query": "x"})
        assert (
            status == 400 and body["message"] == "The API KEY is missing" and body["code"] == "400"
        )
        status, body, _ = await _call(
            http, "POST", url, json={"query": "x"}, headers={"Authorization": "Bearer no"}
        )
        assert status == 401 and body["message"] == "Invalid API KEY"
        auth = {"Authorization": "Bearer sk-b"}
        status, body, _ = await _call(
            http, "POST", url, json={"query": "网关", "summary": True, "count": 1}, headers=auth
        )
        page = body["data"]["webPages"]["value"]
        assert status == 200 and body["code"] == 200 and len(page) == 1 and page[0]["summary"]
        assert page[0]["datePublished"].endswith("+08:00") and page[0]["dateLastCrawled"].endswith(
            "Z"
        )
        for fresh, ok in (("oneWeek", True), ("2020-01-01..2030-01-01", True), ("2026-01-01", True),
                          ("lastWeek", False), ("2026-13-01", False)):  # fmt: skip
            status, body, _ = await _call(
                http, "POST", url, json={"query": "网关", "freshness": fresh}, headers=auth
            )
            assert (status == 200) is ok, fresh
        status, body, _ = await _call(
            http, "POST", url, json={"query": "x", "count": 0}, headers=auth
        )
        assert status == 400


async def test_google(http: aiohttp.ClientSession) -> None:
    async with EmulatorServer("google", knobs=Knobs(api_key="AIza-k")) as emu:
        url = emu.origin + "/customsearch/v1"
        status, body, _ = await _call(http, "GET", url, params={"cx": "c", "q": "x"})
        assert status == 403 and body["error"]["status"] == "PERMISSION_DENIED"
        status, body, _ = await _call(http, "GET", url, params={"key": "bad", "cx": "c", "q": "x"})
        assert status == 400 and body["error"]["message"].startswith("API key not valid")
        good = {"key": "AIza-k", "cx": "c"}
        for bad in (
            {"q": "x", "num": "11"},
            {"q": "x", "num": "0"},
            {"q": "x", "dateRestrict": "z3"},
            {"q": "x", "cx": ""},
        ):
            status, body, _ = await _call(http, "GET", url, params={**good, **bad})
            assert status == 400 and body["error"]["status"] == "INVALID_ARGUMENT", bad
        status, body, _ = await _call(http, "GET", url, params={**good, "q": "zzqx"})
        assert (
            status == 200
            and "items" not in body
            and body["searchInformation"]["totalResults"] == "0"
        )
        status, body, _ = await _call(
            http, "GET", url, params={**good, "q": "relaygate search", "num": "1", "start": "2"}
        )
        assert len(body["items"]) == 1 and body["queries"]["request"][0]["startIndex"] == 2
        async with http.post(emu.origin + "/_emulator/search", json={"malformed": True}) as r:
            assert r.status == 200
        async with http.get(url, params={**good, "q": "relaygate"}) as r:
            assert r.status == 200
            with pytest.raises(ValueError):
                await r.json()
        async with http.post(emu.origin + "/_emulator/search", json=[1]) as r:
            assert r.status == 400


@pytest.mark.parametrize("name", ["searxng", "tavily", "bocha", "google"])
async def test_query_triggers(http: aiohttp.ClientSession, name: str) -> None:
    async with EmulatorServer(name, knobs=Knobs(require_auth=False, retry_after=7)) as emu:
        if name == "searxng":
            req: dict[str, Any] = {
                "method": "GET",
                "url": emu.origin + "/search",
                "params": {"q": "error-429", "format": "json"},
            }
        elif name == "tavily":
            req = {"method": "POST", "url": emu.origin + "/search", "json": {"query": "error-429"}}
        elif name == "bocha":
            req = {
                "method": "POST",
                "url": emu.origin + "/v1/web-search",
                "json": {"query": "error-429"},
            }
        else:
            req = {
                "method": "GET",
                "url": emu.origin + "/customsearch/v1",
                "params": {"q": "error-429", "cx": "c"},
            }
        async with http.request(**req) as resp:
            assert resp.status == 429 and resp.headers["retry-after"] == "7"
        assert emu.stats.errors == 1
