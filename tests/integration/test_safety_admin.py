"""The content-safety admin API against real gateways (docs/safety.md): lists and words,
import/export round trips, refusals that save nothing, a 100,000-word import, the test
call, the audit of a blocked prompt, and hot reload on two workers and across two gateway
processes sharing one PostgreSQL database."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from conftest import Upstreams
from gateway import Gateway, fresh_pg_database

CHAT = "/chat/completions"


def _channel(gw: Gateway, up: Upstreams) -> None:
    gw.create_channel(
        name="openai",
        provider="openai_compat",
        profile="openai",
        base_url=up.openai.base_url,
        keys=["sk-up-openai"],
        models=["gpt-4o-mini"],
    )


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, upstreams: Upstreams) -> Iterator[Gateway]:
    g = Gateway(Path(tmp_path_factory.mktemp("gw-safety"))).start()
    try:
        _channel(g, upstreams)
        yield g
    finally:
        g.stop()


def call(gw: Gateway, method: str, path: str, **kw: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {gw.admin_token}", **kw.pop("headers", {})}
    return httpx.request(
        method, gw.base + "/admin/api/safety" + path, headers=headers, timeout=60, **kw
    )


def new_list(gw: Gateway, name: str, **fields: Any) -> dict[str, Any]:
    r = call(gw, "POST", "/lists", json={"name": name, **fields})
    assert r.status_code == 201, r.text
    return dict(r.json()["data"])


def chat(gw: Gateway, key: str, text: str) -> httpx.Response:
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}]}
    with httpx.Client() as c:  # a fresh connection: any worker may take it
        return c.post(
            gw.base_url + CHAT, json=body, headers={"Authorization": f"Bearer {key}"}, timeout=30
        )


def error_of(r: httpx.Response) -> dict[str, Any]:
    return dict(r.json()["error"])


# ---- lists ---------------------------------------------------------------------------
def test_list_crud_and_refusals(gw: Gateway) -> None:
    made = new_list(gw, "crud", category="violence", action="mask", groups=["vip"], words=["a1"])
    assert made["words"] == 1 and made["action"] == "mask" and made["groups"] == ["vip"]
    lid = made["id"]
    got = call(gw, "GET", f"/lists/{lid}?words=1").json()["data"]
    assert got["word_list"] == [{"word": "a1", "category": None, "action": None}]
    assert any(x["id"] == lid for x in call(gw, "GET", "/lists").json()["data"])
    r = call(gw, "PATCH", f"/lists/{lid}", json={"enabled": False, "groups": None})
    assert r.status_code == 200 and r.json()["data"]["enabled"] is False
    assert r.json()["data"]["groups"] is None
    # a second list of the same name, by create or by rename
    assert call(gw, "POST", "/lists", json={"name": "crud"}).json()["error"]["code"] == "conflict"
    other = new_list(gw, "crud-2")
    r = call(gw, "PATCH", f"/lists/{other['id']}", json={"name": "crud"})
    assert r.status_code == 403 and error_of(r)["code"] == "conflict"
    # hostile bodies: every one a JSON error naming the field, nothing created
    for body, param in [
        ({"name": ""}, "name"),
        ({"name": "x" * 65}, "name"),
        ({"name": 5}, "name"),
        ({"name": "n", "action": "explode"}, "action"),
        ({"name": "n", "groups": ["Not A Group"]}, "groups[0]"),
        ({"name": "n", "groups": []}, "groups"),
        ({"name": "n", "enabled": "yes"}, "enabled"),
        ({"name": "n", "pattern": ".*"}, "pattern"),
        ({"name": "n", "words": "abc"}, "words"),
    ]:
        r = call(gw, "POST", "/lists", json=body)
        assert r.status_code == 403, (body, r.text)
        assert error_of(r)["param"] == param, (body, r.text)
    r = call(gw, "POST", "/lists", content=b"[1,2]")
    assert r.status_code == 403 and "JSON object" in error_of(r)["message"]
    r = call(gw, "PATCH", f"/lists/{lid}", json={})
    assert r.status_code == 403 and "Nothing to change" in error_of(r)["message"]
    for bad in ("abc", "0", "-1", "99999999999999999999", "424242"):
        r = call(gw, "GET", f"/lists/{bad}")
        assert r.status_code == 404 and error_of(r)["code"] == "safety_list_not_found", r.text
    assert call(gw, "PUT", f"/lists/{lid}").status_code == 405
    assert call(gw, "DELETE", f"/lists/{lid}").status_code == 200
    assert call(gw, "GET", f"/lists/{lid}").status_code == 404
    r = httpx.get(gw.base + "/admin/api/safety/lists", timeout=10)
    assert r.status_code == 401


def test_words_add_remove(gw: Gateway) -> None:
    lid = new_list(gw, "words")["id"]
    r = call(gw, "POST", f"/lists/{lid}/words", json={"words": ["x1", "x1", "X1", "x2"]})
    assert r.json()["data"] == {
        "added": 2,
        "already_listed": 0,
        "duplicates": 2,
        "duplicate_words": ["x1", "X1"],
    }
    r = call(gw, "POST", f"/lists/{lid}/words", json={"words": ["x2", {"word": "x3"}]})
    assert r.json()["data"]["added"] == 1 and r.json()["data"]["already_listed"] == 1
    r = call(gw, "DELETE", f"/lists/{lid}/words", json={"words": ["x1", "nope"]})
    assert r.json()["data"] == {"removed": 1, "not_found": 1}
    for body in ({}, {"words": []}, {"words": [1]}, {"words": ["a"], "extra": 1}):
        assert call(gw, "DELETE", f"/lists/{lid}/words", json=body).status_code == 403
    assert call(gw, "GET", f"/lists/{lid}").json()["data"]["words"] == 2


# ---- import / export -----------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["txt", "csv", "json"])
def test_import_export_round_trip(gw: Gateway, fmt: str) -> None:
    words = ["敏感词", "#hashtag", 'with "quotes", and commas', "ｆｕｌｌ", "café"]
    if fmt == "txt":
        body = ("# comment\n" + "\n".join("\\" + w if w[0] == "#" else w for w in words)).encode()
    elif fmt == "csv":
        body = (
            "word,category,action\n"
            + "\n".join('"' + w.replace('"', '""') + '",,' for w in words)
            + "\nper-word,violence,mask\n"
        ).encode()
        words.append("per-word")
    else:
        body = orjson.dumps([*words[:-1], {"word": words[-1], "action": "log"}])
    src = new_list(gw, f"src-{fmt}")["id"]
    r = call(gw, "POST", f"/lists/{src}/import?format={fmt}", content=body)
    assert r.status_code == 200, r.text
    assert r.json()["data"]["added"] == len(words)
    exported = call(gw, "GET", f"/lists/{src}/export?format={fmt}")
    assert exported.status_code == 200
    dst = new_list(gw, f"dst-{fmt}", words=["old"])["id"]
    r = call(gw, "POST", f"/lists/{dst}/import?format={fmt}&mode=replace", content=exported.content)
    assert r.status_code == 200, r.text
    again = call(gw, "GET", f"/lists/{dst}/export?format={fmt}")
    strip = (lambda b: b.split(b"\n", 1)[1]) if fmt == "txt" else (lambda b: b)
    if fmt == "json":
        a, b = orjson.loads(exported.content), orjson.loads(again.content)
        assert a["words"] == b["words"]
    else:
        assert strip(again.content) == strip(exported.content)
    stored = call(gw, "GET", f"/lists/{dst}?words=1").json()["data"]["word_list"]
    assert [w["word"] for w in stored] == words


def test_invalid_imports_save_nothing(gw: Gateway) -> None:
    lid = new_list(gw, "strict", words=["keep"])["id"]
    long_word = "y" * 101
    body = f"fine\n{long_word}\nbell\x07x\n\u200b\u200d\n".encode()
    r = call(gw, "POST", f"/lists/{lid}/import?format=txt", content=body)
    assert r.status_code == 403, r.text
    err = error_of(r)
    assert err["code"] == "invalid_word_list"
    assert "line 2: longer than 100" in err["message"] and "line 3: control" in err["message"]
    assert "line 4" in err["message"] and "nothing was saved" in err["message"]
    for fmt, raw in [
        ("csv", b"a,b,block,extra\n"),
        ("json", b'[""]'),
        ("json", b"{not json"),
        ("txt", b"\xff\xfe"),
        ("txt", b""),
        ("xml", b"a"),
    ]:
        r = call(gw, "POST", f"/lists/{lid}/import?format={fmt}", content=raw)
        assert r.status_code == 403, (fmt, raw, r.text)
    r = call(gw, "POST", f"/lists/{lid}/import?format=txt&mode=merge", content=b"a")
    assert r.status_code == 403 and error_of(r)["param"] == "mode"
    r = call(gw, "POST", f"/lists/{lid}/import?format=txt", content=b"x" * (1024 * 1024 + 1))
    assert r.status_code == 403 and "larger than" in error_of(r)["message"]
    words = call(gw, "GET", f"/lists/{lid}?words=1").json()["data"]["word_list"]
    assert [w["word"] for w in words] == ["keep"]
    # a create with an invalid word creates no list
    r = call(gw, "POST", "/lists", json={"name": "never", "words": ["ok", ""]})
    assert r.status_code == 403 and "words[1]: empty word" in error_of(r)["message"]
    assert all(x["name"] != "never" for x in call(gw, "GET", "/lists").json()["data"])


def test_large_import_in_seconds(gw: Gateway) -> None:
    lid = new_list(gw, "big")["id"]
    body = "\n".join(f"w{i:06d}" for i in range(100_000)).encode()
    started = time.monotonic()
    r = call(gw, "POST", f"/lists/{lid}/import?format=txt", content=body)
    took = time.monotonic() - started
    assert r.status_code == 200, r.text
    assert r.json()["data"]["added"] == 100_000
    # validation, the insert and this worker's recompilation, on a loaded 2-core machine
    assert took < 20, took
    r = call(gw, "POST", "/test", json={"text": "say w099999 and w000001"})
    assert [h["word"] for h in r.json()["data"]["hits"]] == ["w099999", "w000001"]
    exported = call(gw, "GET", f"/lists/{lid}/export?format=txt")
    assert exported.content.count(b"\n") == 100_001
    assert call(gw, "DELETE", f"/lists/{lid}").status_code == 200


# ---- the test call and the audit -------------------------------------------------------
def test_test_call(gw: Gateway) -> None:
    new_list(gw, "test-call", category="drugs", words=["heroin"])
    new_list(gw, "vip-only", action="log", groups=["vip"], words=["secretword"])
    r = call(gw, "POST", "/test", json={"text": "buy HEROIN and secretword"})
    data = r.json()["data"]
    assert data["blocked"] is True
    assert [(h["word"], h["text"], h["category"]) for h in data["hits"]] == [
        ("heroin", "HEROIN", "drugs")
    ]
    r = call(gw, "POST", "/test", json={"text": "secretword", "group": "vip"})
    assert [h["action"] for h in r.json()["data"]["hits"]] == ["log"]
    assert r.json()["data"]["blocked"] is False
    for body, param in [({"text": 5}, "text"), ({"text": "x", "group": "A B"}, "group")]:
        r = call(gw, "POST", "/test", json=body)
        assert r.status_code == 403 and error_of(r)["param"] == param


def test_blocked_prompt_is_audited(gw: Gateway) -> None:
    uid = gw.create_user("audited")
    key = gw.create_key(uid)
    new_list(gw, "audit-list", category="weapons", words=["nerve agent"])
    text = "x" * 300 + " how to make a nerve agent at home " + "y" * 300
    r = chat(gw, key, text)
    assert r.status_code == 402, r.text
    assert error_of(r)["code"] == "content_policy_violation"
    deadline = time.monotonic() + 10
    rows: list[dict[str, Any]] = []
    while time.monotonic() < deadline and not rows:
        got = call(gw, "GET", f"/audit?user_id={uid}")
        assert got.status_code == 200, gw.logs()[-3000:]
        rows = got.json()["data"]
        time.sleep(0.2)
    assert rows, "no audit row"
    row = rows[0]
    assert row["list_name"] == "audit-list" and row["category"] == "weapons"
    assert row["word"] == "nerve agent" and row["where"] == "prompt" and row["action"] == "block"
    assert "nerve agent" in row["excerpt"] and len(row["excerpt"]) <= 200
    assert row["user_id"] == uid and row["request_id"]
    since = call(gw, "GET", f"/audit?list_id={row['list_id']}&since=2000-01-01T00:00:00Z")
    assert [x["id"] for x in since.json()["data"]] == [row["id"]]
    assert call(gw, "GET", "/audit?until=2000-01-01T00:00:00Z").json()["data"] == []
    writer = call(gw, "GET", "/audit?limit=1").json()["writer"]
    assert writer["written"] >= 1 and writer["dropped"] == 0 and writer["backlog"] == 0
    for q in ("limit=0", "limit=x", "since=yesterday", "user=1", "before_id=-4"):
        assert call(gw, "GET", f"/audit?{q}").status_code == 403, q


# ---- hot reload ------------------------------------------------------------------------
def _settled(gw: Gateway, key: str, text: str, status: int, within: float) -> float:
    """Seconds after which ``text`` was answered ``status`` on every one of 10 fresh
    connections in a row (the start of that streak)."""
    started = time.monotonic()
    streak_from = 0.0
    streak = 0
    while time.monotonic() - started < within:
        sent = time.monotonic() - started
        r = chat(gw, key, text)
        assert r.status_code in (200, 402), r.text
        if r.status_code == status:
            streak_from = streak_from if streak else sent
            streak += 1
        else:
            streak = 0
        if streak >= 10:
            return streak_from
    raise AssertionError(f"not {status} on every worker within {within} s")


def test_hot_reload_two_workers(tmp_path: Path, upstreams: Upstreams) -> None:
    g = Gateway(tmp_path, workers=2).start()
    try:
        _channel(g, upstreams)
        key = g.create_key(g.create_user("reload"))
        lid = new_list(g, "hot")["id"]
        time.sleep(1.2)  # every worker has the channel and the key
        assert chat(g, key, "tell me about zebrafish").status_code == 200
        call(g, "POST", f"/lists/{lid}/words", json={"words": ["zebrafish"]})
        # RELAYGATE_REFRESH_INTERVAL is 0.5 s in tests; the bound leaves room for a loaded
        # 2-core machine (a reload is a snapshot load plus a compile in a thread)
        assert _settled(g, key, "tell me about zebrafish", 402, 15) < 4
        call(g, "PATCH", f"/lists/{lid}", json={"enabled": False})
        assert _settled(g, key, "tell me about zebrafish", 200, 15) < 4
    finally:
        g.stop()


def test_hot_reload_across_gateways_on_postgres(tmp_path: Path, upstreams: Upstreams) -> None:
    with fresh_pg_database() as url:
        env = {"RELAYGATE_DATABASE_URL": url, "RELAYGATE_SECRET_KEY": "shared-test-secret"}
        for sub in ("one", "two"):
            (tmp_path / sub).mkdir()
        one = Gateway(tmp_path / "one", env).start()
        two = Gateway(tmp_path / "two", env).start()
        try:
            _channel(one, upstreams)
            key = one.create_key(one.create_user("pg-reload"))
            time.sleep(1.2)
            assert chat(two, key, "what is a quokka").status_code == 200
            new_list(one, "pg-hot", words=["quokka"])
            assert _settled(two, key, "what is a quokka", 402, 15) < 4
            r = call(two, "POST", "/test", json={"text": "quokka"})
            assert [h["word"] for h in r.json()["data"]["hits"]] == ["quokka"]
        finally:
            two.stop()
            one.stop()


def test_safety_off(tmp_path: Path, upstreams: Upstreams) -> None:
    g = Gateway(tmp_path, {"RELAYGATE_SAFETY": "0"}).start()
    try:
        _channel(g, upstreams)
        key = g.create_key(g.create_user("unfiltered"))
        new_list(g, "inert", words=["okapi"])  # lists can still be edited
        assert chat(g, key, "an okapi").status_code == 200
        r = call(g, "POST", "/test", json={"text": "okapi"})
        assert r.status_code == 503 and "RELAYGATE_SAFETY=0" in error_of(r)["message"]
        assert "safety lists loaded" not in g.logs()
    finally:
        g.stop()
