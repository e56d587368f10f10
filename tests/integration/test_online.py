"""``online`` web search through the running gateway (docs/online.md), with the strict
openai SDK: grounded answers from the local index with citations (whole and streamed),
seed 001's two notice chunks in order, the search fee and the log row, the triggers, a
backend that times out or fails (answered without search, said so, no fee), and page
fetches that must not reach loopback addresses (a hit pointing at an intranet page)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import openai
import orjson
import pytest
from aiohttp import web
from gateway import Gateway, run_cli

from relaygate.emulator import EmulatorServer, Knobs

SECRET = "SECRET-INTRANET-7731"


class _Pages:
    """A loopback web server: an intranet page whose text must never reach a model."""

    def __init__(self) -> None:
        self.hits = 0
        self.port = 0
        self._ready = threading.Event()
        self._stop: Any = None

    def start(self) -> _Pages:
        import asyncio

        async def page(request: web.Request) -> web.Response:
            self.hits += 1
            html = f"<html><body><article><h1>Handbook</h1><p>{SECRET} salary table."
            html += " More private text here for extraction.</p></article></body></html>"
            return web.Response(text=html, content_type="text/html")

        def run() -> None:
            loop = asyncio.new_event_loop()
            app = web.Application()
            app.router.add_get("/{tail:.*}", page)
            runner = web.AppRunner(app)
            loop.run_until_complete(runner.setup())
            site = web.TCPSite(runner, "127.0.0.1", 0)
            loop.run_until_complete(site.start())
            self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            stop = loop.create_future()
            self._stop = (loop, stop)
            self._ready.set()
            loop.run_until_complete(stop)
            loop.run_until_complete(runner.cleanup())

        threading.Thread(target=run, daemon=True).start()
        self._ready.wait(10)
        return self

    def stop(self) -> None:
        loop, stop = self._stop
        loop.call_soon_threadsafe(stop.set_result, None)


@dataclass
class World:
    gw: Gateway
    up: EmulatorServer
    key: str
    user_id: int
    pages: _Pages
    claude: EmulatorServer | None = None


def _corpus(root: Path, pages_port: int) -> Path:
    docs = root / "corpus"
    docs.mkdir()
    (docs / "storage.md").write_text(
        "---\nurl: https://relaygate.invalid/docs/storage\npublished: 2026-11-01\n---\n"
        "# Where relaygate keeps its data\n\nrelaygate stores its data in SQLite by default. "
        "For several nodes it uses PostgreSQL and Redis.\n"
    )
    (docs / "routing.md").write_text(
        "---\nurl: https://relaygate.invalid/docs/routing\n---\n"
        "# Routing and failover\n\nrelaygate moves a request to the next channel when one "
        "fails before the first byte. Its data about channels lives in the database.\n"
    )
    (docs / "handbook.md").write_text(
        f"---\nurl: http://127.0.0.1:{pages_port}/handbook\n---\n"
        "# Intranet handbook vacation policy\n\nThe vacation policy summary is public.\n"
    )
    return docs


def _gateway(root: Path, up: EmulatorServer, env: dict[str, str]) -> tuple[Gateway, str, int]:
    gw = Gateway(root, env).start()
    uid = gw.create_user("olga", balance="100")
    gw.create_channel(
        name="openai",
        provider="openai_compat",
        profile="openai",
        base_url=up.base_url,
        keys=["sk-up-online"],
        models=["gpt-4o-mini"],
    )
    gw.admin(
        "POST",
        "/prices",
        {"model": "gpt-4o-mini", "currency": "CNY", "per": "1m", "input": "1", "output": "2"},
    )
    gw.admin(
        "POST",
        "/prices",
        {
            "model": "web-search",
            "currency": "CNY",
            "per": "1m",
            "input": "0",
            "output": "0",
            "per_request": "0.05",
        },
    )
    key = gw.create_key(uid, name="online")
    time.sleep(1.2)  # the workers see the prices (refresh interval 0.5 s)
    return gw, key, uid


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = Path(tmp_path_factory.mktemp("online"))
    pages = _Pages().start()
    up = EmulatorServer("openai", knobs=Knobs(api_key="sk-up-online")).start()
    db = root / "index.db"
    env = {
        "RELAYGATE_SEARCH_BACKEND": "local",
        "RELAYGATE_SEARCH_LOCAL_DB": str(db),
        "RELAYGATE_SEARCH_FETCH": "1",
        "RELAYGATE_SEARCH_TIMEOUT": "3",
    }
    gw_env = {**Gateway(root / "probe").env, **env}
    gw_env["RELAYGATE_DATA_DIR"] = str(root / "gw")
    out = run_cli(gw_env, "search-index", "load", str(_corpus(root, pages.port)))
    assert "loaded 3 document(s)" in out
    gw, key, uid = _gateway(root / "gw", up, env)
    claude = EmulatorServer("anthropic", knobs=Knobs(api_key="sk-ant-online")).start()
    gw.create_channel(
        name="anthropic",
        provider="anthropic",
        base_url=claude.base_url,
        keys=["sk-ant-online"],
        models=["claude-online"],
    )
    time.sleep(1.2)  # the workers see the channel
    try:
        yield World(gw, up, key, uid, pages, claude)
    finally:
        gw.stop()
        up.stop()
        claude.stop()
        pages.stop()


def _client(w: World) -> openai.OpenAI:
    return openai.OpenAI(api_key=w.key, base_url=w.gw.base_url, max_retries=0)


def _row(gw: Gateway, request_id: str) -> dict[str, Any]:
    for _ in range(50):
        rows = gw.admin("GET", f"/logs?request_id={request_id}")["data"]
        if rows:
            return dict(rows[0])
        time.sleep(0.1)
    raise AssertionError(f"no log row for {request_id}")


def _system_text(body: dict[str, Any]) -> str:
    first = body["messages"][0]
    assert first["role"] == "system"
    return str(first["content"])


QUESTION = "Where does relaygate keep its data?"


def test_an_online_answer_is_grounded_and_cites_its_sources(world: World) -> None:
    before = world.gw.balance(world.user_id)["balance_units"]
    raw = _client(world).chat.completions.with_raw_response.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": QUESTION}],
        extra_body={"online": True},
    )
    answer = raw.parse()
    sent = world.up.stats.last_body
    assert "online" not in sent
    system = _system_text(sent)
    assert "[1] Where relaygate keeps its data" in system
    assert "URL: https://relaygate.invalid/docs/storage" in system
    content = answer.choices[0].message.content or ""
    assert "[1]" in content  # the emulated model cites what it was given
    annotations = answer.choices[0].message.annotations or []
    assert annotations, content
    first = annotations[0].url_citation
    assert first.url == "https://relaygate.invalid/docs/storage"
    assert first.title == "Where relaygate keeps its data"
    assert content[first.start_index : first.end_index] == "[1]"
    extra = answer.model_extra or {}
    assert extra["online"]["status"] == "ok" and extra["online"]["hits"] >= 1
    assert extra["citations"][0] == first.url
    row = _row(world.gw, raw.headers["x-request-id"])
    assert row["search"]["status"] == "ok" and row["search"]["hits"] == extra["online"]["hits"]
    assert isinstance(row["search"]["ms"], int)
    usage = answer.usage
    assert usage is not None
    tokens = Decimal(usage.prompt_tokens * 1 + usage.completion_tokens * 2) / 1_000_000
    fee = Decimal("0.05")
    assert Decimal(row["cost"]) == (tokens + fee).quantize(Decimal("0.000001"), "ROUND_CEILING")
    after = world.gw.balance(world.user_id)["balance_units"]
    assert before - after == row["cost_units"]


def _raw_stream(w: World) -> tuple[str, list[dict[str, Any]]]:
    """QUESTION asked online and streamed, read as raw SSE (not through an SDK): the request
    id and the events before ``data: [DONE]``, which must end the stream."""
    with httpx.stream(
        "POST",
        w.gw.base_url + "/chat/completions",
        headers={"Authorization": f"Bearer {w.key}"},
        json={
            "model": "gpt-4o-mini",
            "online": True,
            "stream": True,
            "messages": [{"role": "user", "content": QUESTION}],
        },
        timeout=20,
    ) as r:
        assert r.status_code == 200
        request_id = r.headers["x-request-id"]
        lines = [ln for ln in r.iter_lines() if ln.startswith("data: ")]
    assert lines[-1] == "data: [DONE]"
    return request_id, [orjson.loads(ln[6:]) for ln in lines[:-1]]


def test_a_streamed_online_answer_sends_the_two_notices_first(world: World) -> None:
    _, chunks = _raw_stream(world)
    first, second = chunks[0]["choices"][0], chunks[1]["choices"][0]
    assert first["delta"] == {
        "role": "assistant",
        "content": None,
        "function_call": {"name": "web_search", "arguments": ""},
    }
    assert first["finish_reason"] is None
    assert second["delta"] == {} and second["finish_reason"] == "function_call"
    assert chunks[1]["online"]["status"] == "ok"
    text = "".join(
        c["choices"][0]["delta"].get("content") or "" for c in chunks[2:] if c.get("choices")
    )
    assert "[1]" in text
    notes = [c for c in chunks if c.get("choices") and "annotations" in c["choices"][0]["delta"]]
    assert len(notes) == 1
    note = notes[0]["choices"][0]["delta"]["annotations"][0]["url_citation"]
    assert note["url"] == "https://relaygate.invalid/docs/storage"
    assert text[note["start_index"] : note["end_index"]] == "[1]"
    finishes = [
        i
        for i, c in enumerate(chunks)
        if c.get("choices") and c["choices"][0].get("finish_reason") == "stop"
    ]
    assert finishes and chunks.index(notes[0]) < finishes[0]


def test_the_openai_sdk_reads_the_online_stream(world: World) -> None:
    stream = _client(world).chat.completions.create(
        model="gpt-4o-mini:online",
        messages=[{"role": "user", "content": QUESTION}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert chunks[0].choices[0].delta.function_call is not None
    assert chunks[0].choices[0].delta.function_call.name == "web_search"
    assert chunks[1].choices[0].finish_reason == "function_call"
    assert world.up.stats.last_body["model"] == "gpt-4o-mini"  # the suffix is gone
    annotated = [
        c for c in chunks if c.choices and (c.choices[0].delta.model_extra or {}).get("annotations")
    ]
    assert annotated
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


def test_web_search_options_triggers_a_search_and_sets_the_result_count(world: World) -> None:
    answer = _client(world).chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "relaygate data"}],
        extra_body={"web_search_options": {"search_context_size": "low"}},
    )
    sent = world.up.stats.last_body
    assert "web_search_options" not in sent
    assert "A web search was run" in _system_text(sent)
    assert (answer.model_extra or {})["online"]["status"] == "ok"


def test_a_plain_request_is_untouched(world: World) -> None:
    answer = _client(world).chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": QUESTION}],
        extra_body={"online": False},
    )
    sent = world.up.stats.last_body
    assert sent["messages"] == [{"role": "user", "content": QUESTION}] and "online" not in sent
    assert "online" not in (answer.model_extra or {})


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"online": "yes"}, "online"),
        ({"online": 1}, "online"),
        ({"web_search_options": "high"}, "web_search_options"),
        ({"web_search_options": {"search_context_size": "max"}}, "search_context_size"),
    ],
)
def test_wrong_types_are_refused_with_the_field_named(
    world: World, extra: dict[str, Any], param: str
) -> None:
    with pytest.raises(openai.APIStatusError) as err:
        _client(world).chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "x"}],
            extra_body=extra,
        )
    assert err.value.status_code < 500
    body = err.value.response.json()
    assert param in (body["error"]["param"] or "")
    assert body["error"]["code"] == "invalid_request_error"


def test_a_fetch_never_reaches_a_loopback_page(world: World) -> None:
    """The index holds a hit whose URL is an intranet page on 127.0.0.1: the fetcher must
    refuse it (private addresses are off by default), so the model gets the snippet only."""
    hits_before = world.pages.hits
    answer = _client(world).chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "intranet handbook vacation policy"}],
        extra_body={"online": True},
    )
    system = _system_text(world.up.stats.last_body)
    assert f"http://127.0.0.1:{world.pages.port}/handbook" in system  # the hit itself is kept
    assert "vacation policy summary" in system
    assert SECRET not in system
    assert world.pages.hits == hits_before  # not even connected to
    assert (answer.model_extra or {})["online"]["status"] == "ok"


# ---- a remote backend that is slow or failing ------------------------------------------------
@pytest.fixture(scope="module")
def remote(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[World, EmulatorServer]]:
    root = Path(tmp_path_factory.mktemp("online-remote"))
    up = EmulatorServer("openai", knobs=Knobs(api_key="sk-up-online")).start()
    searx = EmulatorServer("searxng").start()
    env = {
        "RELAYGATE_SEARCH_BACKEND": "searxng",
        "RELAYGATE_SEARCH_URL": searx.base_url.removesuffix("/v1"),
        "RELAYGATE_SEARCH_TIMEOUT": "0.5",
        "RELAYGATE_SEARCH_NOTICE": "0",
        "RELAYGATE_SEARCH_REWRITE_MODEL": "gpt-4o-mini",
    }
    gw, key, uid = _gateway(root, up, env)
    try:
        yield World(gw, up, key, uid, _Pages()), searx
    finally:
        gw.stop()
        up.stop()
        searx.stop()


def test_a_remote_backend_grounds_the_answer(remote: tuple[World, EmulatorServer]) -> None:
    w, searx = remote
    searx.reset()
    answer = _client(w).chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "relaygate online search"}],
        extra_body={"online": True},
    )
    assert (answer.model_extra or {})["online"]["status"] == "ok"
    assert "relaygate.example.org" in _system_text(w.up.stats.last_body)


@pytest.mark.parametrize("mode", ["slow", "error"])
def test_a_backend_that_times_out_or_fails_degrades_without_fee(
    remote: tuple[World, EmulatorServer], mode: str
) -> None:
    w, searx = remote
    searx.reset()
    if mode == "slow":
        searx.configure(latency_ms=3000)
    else:
        searx.configure(fail_status=500, fail_times=100)
    question = [{"role": "user", "content": "relaygate online search"}]
    began = time.monotonic()
    raw = _client(w).chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=question, extra_body={"online": True}
    )
    answer = raw.parse()
    assert time.monotonic() - began < 2.5  # the deadline, not the backend, decided
    online = (answer.model_extra or {})["online"]
    assert online["status"] == ("timeout" if mode == "slow" else "failed")
    assert online["reason"]
    assert w.up.stats.last_body["messages"] == question  # answered without search
    assert answer.choices[0].message.content
    row = _row(w.gw, raw.headers["x-request-id"])
    usage = answer.usage
    assert usage is not None
    tokens = Decimal(usage.prompt_tokens + usage.completion_tokens * 2) / 1_000_000
    assert Decimal(row["cost"]) == tokens.quantize(Decimal("0.000001"), "ROUND_CEILING")
    assert row["search"]["status"] == online["status"]
    searx.reset()


def test_without_notices_the_stream_still_says_how_the_search_went(
    remote: tuple[World, EmulatorServer],
) -> None:
    w, searx = remote
    searx.reset()
    searx.configure(latency_ms=3000)
    chunks = list(
        _client(w).chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "relaygate online search"}],
            stream=True,
            extra_body={"online": True},
        )
    )
    assert all(c.choices[0].finish_reason != "function_call" for c in chunks if c.choices)
    assert chunks[0].choices[0].delta.function_call is None
    told = [
        (c.model_extra or {}).get("online") for c in chunks if (c.model_extra or {}).get("online")
    ]
    assert told == [
        {
            "status": "timeout",
            "query": "relaygate online search",
            "hits": 0,
            "reason": told[0]["reason"],
        }
    ]
    searx.reset()


def test_the_rewrite_model_writes_the_query(remote: tuple[World, EmulatorServer]) -> None:
    """With RELAYGATE_SEARCH_REWRITE_MODEL the query comes from that model (the emulated
    one joins the user turns); without an answer from it, the last user turn is used."""
    w, searx = remote
    searx.reset()
    turns = [
        {"role": "user", "content": "relaygate routing"},
        {"role": "assistant", "content": "It routes by priority."},
        {"role": "user", "content": "tell me more about channels please"},
    ]
    answer = _client(w).chat.completions.create(
        model="gpt-4o-mini", messages=turns, extra_body={"online": True}
    )
    online = (answer.model_extra or {})["online"]
    assert online["query"] == "relaygate routing tell me more about channels please"
    assert w.up.stats.last_body["messages"][-1] == turns[-1]
    w.up.configure(fail_status=500, fail_times=1)  # the rewrite call fails: the last turn
    answer = _client(w).chat.completions.create(
        model="gpt-4o-mini", messages=turns, extra_body={"online": True}
    )
    assert (answer.model_extra or {})["online"]["query"] == "tell me more about channels please"
    w.up.reset()


def test_a_failure_after_the_notices_ends_the_stream_with_an_error_event(world: World) -> None:
    """The notices opened the response; every attempt then fails: the stream ends with the
    error event and [DONE] (no JSON error can follow a started response), nothing charged."""
    before = world.gw.balance(world.user_id)["balance_units"]
    world.up.configure(fail_status=500, fail_times=100)
    try:
        request_id, events = _raw_stream(world)
    finally:
        world.up.reset()
    assert events[1]["choices"][0]["finish_reason"] == "function_call"
    assert events[-1]["error"]["code"] == "upstream_error"
    row = _row(world.gw, request_id)
    assert row["error_code"] == "upstream_error" and row["cost_units"] == 0
    assert world.gw.balance(world.user_id)["balance_units"] == before


def test_gemini_google_search_is_answered_by_the_online_search(world: World) -> None:
    """The Google Gen AI SDK's googleSearch tool makes the request online."""
    from google import genai
    from google.genai import types

    client = genai.Client(
        api_key=world.key,
        http_options=types.HttpOptions(
            base_url=world.gw.base,
            api_version="v1beta",
            retry_options=types.HttpRetryOptions(attempts=1),
        ),
    )
    resp = client.models.generate_content(
        model="gpt-4o-mini",
        contents=QUESTION,
        config=types.GenerateContentConfig(tools=[types.Tool(google_search=types.GoogleSearch())]),
    )
    assert resp.text and "[1]" in resp.text
    assert "URL: https://relaygate.invalid/docs/storage" in _system_text(world.up.stats.last_body)


def test_an_anthropic_channel_taking_messages_natively_gets_the_sources(world: World) -> None:
    """/v1/messages to an Anthropic channel goes as sent: the sources go after its system."""
    import anthropic

    assert world.claude is not None
    client = anthropic.Anthropic(api_key=world.key, base_url=world.gw.base, max_retries=0)
    msg = client.messages.create(
        model="claude-online:online",
        max_tokens=200,
        system="Be brief.",
        messages=[{"role": "user", "content": QUESTION}],
    )
    assert msg.content
    sent = world.claude.stats.last_body
    assert sent["model"] == "claude-online"
    assert sent["system"].startswith("Be brief.\n\nA web search was run")
    assert "URL: https://relaygate.invalid/docs/storage" in sent["system"]


def test_search_results_pass_content_safety(world: World) -> None:
    """A search hit holding a blocked word is dropped (and audited), a masked word masked;
    the answer says how many were filtered."""
    made = world.gw.admin(
        "POST",
        "/safety/lists",
        {"name": "online-test", "category": "test", "action": "block", "words": ["vacation"]},
    )["data"]
    try:
        time.sleep(1.5)  # every worker reloads the lists
        answer = _client(world).chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "intranet handbook policy"}],
            extra_body={"online": True},
        )
        online = (answer.model_extra or {})["online"]
        assert online.get("filtered", 0) >= 1
        sent = world.up.stats.last_body
        assert "vacation" not in orjson.dumps(sent).decode()
        for _ in range(50):  # the audit rows are written in the background
            audit = world.gw.admin("GET", "/safety/audit")["data"]
            if any(row["where"] == "search" and row["word"] == "vacation" for row in audit):
                break
            time.sleep(0.2)
        else:
            raise AssertionError(f"no search audit row: {audit}")
    finally:
        world.gw.admin("DELETE", f"/safety/lists/{made['id']}")
        time.sleep(1.2)
