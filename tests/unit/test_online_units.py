"""The online pieces that are pure: query, sources block, citations, the triggers and
the degraded outcomes of ``OnlineStage`` (with a backend written here for the test)."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from relaygate.billing.stage import SURCHARGES
from relaygate.context import RelayContext
from relaygate.errors import InvalidRequest
from relaygate.online.base import Hit, OnlineSettings, SearchFailed
from relaygate.online.citations import CitationTap, annotate_answer, annotations_for
from relaygate.online.config import online_settings
from relaygate.online.inject import inject_sources
from relaygate.online.query import read_rewrite, rewrite_prompt, search_query
from relaygate.online.stage import ONLINE, OnlineStage

HITS = [
    Hit("https://a.example/1", "Alpha", "alpha text", "t"),
    Hit("https://b.example/2", "Beta", "beta text", "t"),
]


def test_query_is_the_last_user_turn_and_borrows_when_short() -> None:
    msgs = [
        {"role": "user", "content": "What is relaygate's default database?"},
        {"role": "assistant", "content": "SQLite."},
        {"role": "user", "content": [{"type": "text", "text": "and  in\nscale-out?"}]},
    ]
    assert search_query(msgs) == "and in scale-out?"
    msgs[-1] = {"role": "user", "content": "why?"}
    assert search_query(msgs) == "What is relaygate's default database? why?"
    assert search_query([{"role": "system", "content": "x"}]) == ""
    assert search_query([{"role": "user", "content": "x" * 1000}]) == "x" * 300


def test_rewrite_prompt_and_reading_its_answer() -> None:
    body = rewrite_prompt([{"role": "user", "content": "它多少钱?"}], "small", "2026-11-29")
    assert body["model"] == "small" and "2026-11-29" in body["messages"][0]["content"]
    assert body["messages"][1]["content"] == "user: 它多少钱?"
    assert read_rewrite('Sure: {"query": "relaygate  price"}') == "relaygate price"
    assert read_rewrite('{"queries": ["a b", "c"]}') == "a b"
    assert read_rewrite("{not json}") == ""
    assert read_rewrite('"plain query"') == "plain query"


def test_sources_merge_into_the_first_system_message_or_open_one() -> None:
    body: dict[str, Any] = {"messages": [{"role": "user", "content": "q"}]}
    original = body["messages"]
    inject_sources(body, HITS, "q", "2026-11-29")
    assert body["messages"][0]["role"] == "system"
    text = body["messages"][0]["content"]
    assert "[1] Alpha\nURL: https://a.example/1\nalpha text" in text
    assert "[2] Beta" in text and "2026-11-29" in text
    assert original == [{"role": "user", "content": "q"}]  # the client's list is untouched
    body = {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user"}]}
    inject_sources(body, HITS, "q", "d")
    assert body["messages"][0]["content"].startswith("Be brief.\n\nA web search")
    assert len(body["messages"]) == 2
    body = {"messages": [{"role": "developer", "content": [{"type": "text", "text": "x"}]}]}
    inject_sources(body, HITS, "q", "d")
    assert body["messages"][0]["content"][1]["type"] == "text"


def test_annotations_point_at_the_markers() -> None:
    text = "Alpha is first [1]. Both agree [1, 2]【2】 but not [3] or [0]."
    found = annotations_for(text, HITS)
    spans = [(a["url_citation"]["start_index"], a["url_citation"]["end_index"]) for a in found]
    urls = [a["url_citation"]["url"] for a in found]
    assert urls == [HITS[0].url, HITS[0].url, HITS[1].url, HITS[1].url]
    for start, end in spans:
        assert text[start] in "[【" and text[end - 1] in "]】"
    assert annotations_for("no markers", HITS) == [] and annotations_for("[1]", []) == []


def test_a_whole_answer_gets_annotations_citations_and_the_outcome() -> None:
    obj: dict[str, Any] = {
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "See [2]."}}]
    }
    annotate_answer(obj, HITS, {"status": "ok", "query": "q", "hits": 2})
    ann = obj["choices"][0]["message"]["annotations"]
    assert ann[0]["url_citation"]["url"] == HITS[1].url
    assert obj["citations"] == [HITS[0].url, HITS[1].url] and obj["online"]["status"] == "ok"


def _chunk(content: str | None, finish: str | None = None, index: int = 0) -> bytes:
    delta = {} if content is None else {"content": content}
    return orjson.dumps(
        {
            "id": "c1",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": "m",
            "choices": [{"index": index, "delta": delta, "finish_reason": finish}],
        }
    )


def test_the_stream_tap_puts_annotations_before_the_finish_chunk() -> None:
    tap = CitationTap(HITS, {"status": "ok"}, announce=False)
    out = tap.chunks([_chunk("Alpha ["), _chunk("1] and [")])
    assert len(out) == 2
    out = tap.chunks([_chunk("2]."), _chunk(None, "stop"), b'{"choices":[],"usage":{}}'])
    assert len(out) == 4
    extra = orjson.loads(out[1])
    assert extra["choices"][0]["delta"]["annotations"][0]["url_citation"]["start_index"] == 6
    assert [a["url_citation"]["url"] for a in extra["choices"][0]["delta"]["annotations"]] == [
        HITS[0].url,
        HITS[1].url,
    ]
    assert extra["citations"] == [HITS[0].url, HITS[1].url]
    assert orjson.loads(out[2])["choices"][0]["finish_reason"] == "stop"


def test_the_stream_tap_announces_a_failed_search_once_without_notices() -> None:
    tap = CitationTap([], {"status": "timeout"}, announce=True)
    out = tap.chunks([_chunk("x"), _chunk(None, "stop")])
    assert len(out) == 3 and orjson.loads(out[1])["online"]["status"] == "timeout"
    quiet = CitationTap([], {"status": "timeout"}, announce=False)
    assert len(quiet.chunks([_chunk("x"), _chunk(None, "stop")])) == 2


class _Backend:
    name = "test"

    def __init__(self, result: list[Hit] | Exception | None = None, delay: float = 0) -> None:
        self.result = result
        self.delay = delay
        self.queries: list[str] = []

    async def search(self, query: str, *, k: int, **_: Any) -> list[Hit]:
        self.queries.append(query)
        await asyncio.sleep(self.delay)
        if isinstance(self.result, Exception):
            raise self.result
        return list(self.result or [])[:k]

    async def close(self) -> None:
        return None


def _stage(backend: _Backend | None, **kw: Any) -> OnlineStage:
    settings = OnlineSettings(backend="local", **kw)
    return OnlineStage(settings, backend, rank=lambda hits, k: hits[:k])


def _ctx(model: str = "m") -> RelayContext:
    ctx = RelayContext("r1", "chat")
    ctx.model = model
    return ctx


async def test_triggers_are_read_and_taken_out_of_the_body() -> None:
    stage = _stage(_Backend(HITS), always=("always-on",))
    for body, model in [
        ({"model": "m", "online": True}, "m"),
        ({"model": "m", "web_search_options": {}}, "m"),
        ({"model": "m:online"}, "m"),
        ({"model": "always-on"}, "always-on"),
    ]:
        ctx = _ctx(body["model"])
        await stage.prepare(ctx, body)
        assert ctx.get(ONLINE) is not None, body
        assert ctx.model == model and body["model"] == model
        assert "online" not in body and "web_search_options" not in body
        assert ctx.get(SURCHARGES) == ("web-search",)
    ctx = _ctx()
    body = {"model": "m", "online": False}
    await stage.prepare(ctx, body)
    assert ctx.get(ONLINE) is None and body == {"model": "m"}
    ctx = _ctx()
    await stage.prepare(ctx, {"model": "m", "web_search_options": {"search_context_size": "low"}})
    job = ctx.get(ONLINE)
    assert job is not None and job.results == 3


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"online": "yes"}, "online"),
        ({"online": 1}, "online"),
        ({"web_search_options": []}, "web_search_options"),
        ({"web_search_options": {"search_context_size": "huge"}}, "search_context_size"),
        ({"web_search_options": {"search_context_size": 3}}, "search_context_size"),
    ],
)
async def test_wrong_trigger_types_are_refused(body: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as err:
        await _stage(_Backend(HITS)).prepare(_ctx(), {"model": "m", **body})
    assert param in (err.value.param or "")


async def test_a_bare_online_suffix_is_refused() -> None:
    ctx = _ctx(":online")
    with pytest.raises(InvalidRequest):
        await _stage(_Backend(HITS)).prepare(ctx, {"model": ":online"})


async def _run(stage: OnlineStage, body: dict[str, Any]) -> tuple[RelayContext, Any]:
    ctx = _ctx()
    await stage.prepare(ctx, body)
    job = await stage.search(ctx, body)
    return ctx, job


async def test_a_search_injects_sources_and_keeps_the_fee() -> None:
    backend = _Backend(HITS)
    body = {"model": "m", "online": True, "messages": [{"role": "user", "content": "alpha?"}]}
    ctx, job = await _run(_stage(backend), body)
    assert backend.queries == ["alpha?"]
    assert job.status == "ok" and len(job.hits) == 2 and job.ms >= 0
    assert body["messages"][0]["role"] == "system" and "[2] Beta" in body["messages"][0]["content"]
    assert ctx.get(SURCHARGES) == ("web-search",)


@pytest.mark.parametrize(
    ("backend", "status"),
    [
        (_Backend(SearchFailed("HTTP 503 from the backend")), "failed"),
        (_Backend(SearchFailed("no answer", kind="timeout")), "timeout"),
        (_Backend(HITS, delay=5), "timeout"),
        (None, "disabled"),
    ],
)
async def test_a_failed_search_degrades_without_fee(backend: _Backend | None, status: str) -> None:
    msgs = [{"role": "user", "content": "alpha?"}]
    body = {"model": "m", "online": True, "messages": list(msgs)}
    ctx, job = await _run(_stage(backend, timeout=0.2), body)
    assert job.status == status and job.reason
    assert body["messages"] == msgs  # answered without sources
    assert ctx.get(SURCHARGES) is None


async def test_nothing_found_still_pays_the_fee_and_no_query_does_not() -> None:
    body = {"model": "m", "online": True, "messages": [{"role": "user", "content": "zzz"}]}
    ctx, job = await _run(_stage(_Backend([])), body)
    assert job.status == "empty" and ctx.get(SURCHARGES) == ("web-search",)
    body = {"model": "m", "online": True, "messages": [{"role": "user", "content": " "}]}
    ctx, job = await _run(_stage(_Backend(HITS)), body)
    assert job.status == "no_query" and ctx.get(SURCHARGES) is None


def test_settings_are_checked() -> None:
    s = online_settings({"RELAYGATE_SEARCH_BACKEND": "Local", "RELAYGATE_SEARCH_ALWAYS": "a, b"})
    assert s.backend == "local" and s.always == ("a", "b") and s.notice
    for env in (
        {"RELAYGATE_SEARCH_BACKEND": "bing"},
        {"RELAYGATE_SEARCH_RESULTS": "0"},
        {"RELAYGATE_SEARCH_TIMEOUT": "soon"},
        {"RELAYGATE_SEARCH_NOTICE": "maybe"},
    ):
        with pytest.raises(ValueError, match=next(iter(env))):
            online_settings(env)
