"""The admin API against a real gateway: refused writes save nothing and leave the gateway
restartable, every failure is a JSON error, new admin tokens work at once."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import Upstreams
from gateway import Gateway, run_cli


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    # a long refresh interval: nothing but the admin API's own reloads brings changes in
    g = Gateway(Path(tmp_path_factory.mktemp("gw-admin")), {"RELAYGATE_REFRESH_INTERVAL": "60"})
    g.start()
    try:
        yield g
    finally:
        g.stop()


def call(gw: Gateway, method: str, path: str, body: Any = None, **kw: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {kw.pop('token', gw.admin_token)}"}
    return httpx.request(
        method, gw.base + "/admin/api" + path, json=body, headers=headers, timeout=10, **kw
    )


def refused(r: httpx.Response, param: str | None, status: int = 403) -> dict[str, Any]:
    """A clear JSON error (403 is `invalid_request_error` in the default status table)."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert body["code"] == status and body["msg"] == body["error"]["message"]
    assert body["error"]["param"] == param, body
    return dict(body["error"])


def test_bad_patches_are_refused_nothing_is_saved_and_the_gateway_restarts(
    gw: Gateway, upstreams: Upstreams
) -> None:
    uid = gw.create_user("pat")
    key = gw.create_key(uid, models=["gpt-4o-mini"])
    kid = gw.admin("GET", f"/keys?user_id={uid}")["data"][0]["id"]
    cid = gw.create_channel(
        name="openai",
        base_url=upstreams.openai.base_url,
        keys=["sk-up-openai"],
        models=["gpt-4o-mini"],
    )
    keys_before = gw.admin("GET", "/keys")["data"]
    channels_before = gw.admin("GET", "/channels")["data"]

    # the two writes that used to be saved and broke the next start
    err = refused(call(gw, "PATCH", f"/keys/{kid}", {"models": 5}), "models")
    assert "`models` must be an array" in err["message"]
    err = refused(call(gw, "PATCH", f"/channels/{cid}", {"priority": "high"}), "priority")
    assert "`priority` must be an integer" in err["message"]
    for change, param in [
        ({"priority": True}, "priority"),
        ({"weight": 0}, "weight"),
        ({"model_mapping": [1]}, "model_mapping"),
        ({"config": []}, "config"),
        ({"keys": ["ok", ""]}, "keys[1]"),
        ({"base_url": "ftp://x"}, "base_url"),
        ({"models": "gpt-4o-mini"}, "models"),
        ({"status": "on"}, "status"),
        ({"name": "ok", "colour": "red"}, "colour"),
        ({"provider": "anthropic"}, "provider"),
    ]:
        refused(call(gw, "PATCH", f"/channels/{cid}", change), param)
    for change, param in [
        ({"models": []}, "models"),
        ({"rpm_limit": 0}, "rpm_limit"),
        ({"concurrency_limit": "2"}, "concurrency_limit"),
        ({"expires_at": "next week"}, "expires_at"),
        ({"kind": "admin"}, "kind"),
    ]:
        refused(call(gw, "PATCH", f"/keys/{kid}", change), param)
    # POST /channels with a bad mapping was a plain-text 500
    bad = {"name": "b", "base_url": "http://x", "models": ["m"], "model_mapping": [1]}
    refused(call(gw, "POST", "/channels", bad), "model_mapping")

    assert gw.admin("GET", "/keys")["data"] == keys_before
    assert gw.admin("GET", "/channels")["data"] == channels_before

    gw.stop()
    gw.start()  # "Application startup failed" here before
    chat = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    r = httpx.post(
        gw.base_url + "/chat/completions",
        json=chat,
        headers={"Authorization": f"Bearer {key}"},
        timeout=10,
    )
    assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"]


def test_create_refusals(gw: Gateway) -> None:
    uid = gw.create_user("cara")
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    refused(call(gw, "POST", "/keys", {"user_id": uid, "expires_at": past}), "expires_at")
    refused(call(gw, "POST", "/keys", {"user_id": uid, "models": []}), "models")
    refused(call(gw, "POST", "/keys", {"user_id": str(uid)}), "user_id")
    refused(call(gw, "POST", "/keys", {"user_id": uid, "kind": "admin"}), "kind")
    assert call(gw, "POST", "/keys", {"username": "ghost"}).status_code == 404
    refused(call(gw, "POST", "/users", {"username": "x", "nickname": "y"}), "nickname")
    refused(call(gw, "POST", "/users", {"username": ""}), "username")
    refused(call(gw, "POST", "/users", ["x"]), None)
    dup = call(gw, "POST", "/users", {"username": "cara"})
    assert dup.status_code == 403 and dup.json()["error"]["code"] == "conflict"
    chan = {"name": "c", "base_url": "http://127.0.0.1:9/v1", "models": ["m"]}
    refused(call(gw, "POST", "/channels", {**chan, "api_key": ""}), "api_key")
    refused(call(gw, "POST", "/channels", {**chan, "priority": "1"}), "priority")
    refused(call(gw, "POST", "/channels", {**chan, "profile": "nope"}), "profile")
    assert gw.admin("GET", f"/keys?user_id={uid}")["data"] == []
    assert [c for c in gw.admin("GET", "/channels")["data"] if c["name"] == "c"] == []
    refused(call(gw, "GET", "/keys?user_id=me"), "user_id")
    refused(call(gw, "PATCH", "/keys/abc", {"status": "disabled"}), "key_id")
    assert call(gw, "PATCH", "/keys/99999", {"status": "disabled"}).status_code == 404


def test_a_revoked_key_cannot_be_made_active_again(gw: Gateway) -> None:
    uid = gw.create_user("rev")
    key = gw.create_key(uid)
    kid = gw.admin("GET", f"/keys?user_id={uid}")["data"][0]["id"]
    assert gw.admin("PATCH", f"/keys/{kid}", {"status": "revoked"})["data"]["status"] == "revoked"
    err = refused(call(gw, "PATCH", f"/keys/{kid}", {"status": "active"}), "status")
    assert "revoked" in err["message"]
    assert gw.admin("GET", f"/keys?user_id={uid}")["data"][0]["status"] == "revoked"
    r = httpx.get(gw.base_url + "/models", headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 401


def test_log_query_is_validated(gw: Gateway) -> None:
    for query in ("limit=-1", "limit=0", "limit=1001", "limit=abc", "limit=1e3"):
        err = refused(call(gw, "GET", f"/logs?{query}"), "limit")
        assert "1 to 1000" in err["message"]
    refused(call(gw, "GET", "/logs?user_id=abc"), "user_id")
    assert isinstance(gw.admin("GET", "/logs?limit=1000&user_id=1")["data"], list)


def test_wrong_method_is_405_with_allow(gw: Gateway) -> None:
    for method, path, allow in [
        ("PUT", "/users", "GET, POST"),
        ("DELETE", "/users/1", "PATCH"),
        ("POST", "/keys/1", "PATCH, DELETE"),
        ("PATCH", "/logs", "GET"),
    ]:
        r = call(gw, method, path)
        assert r.status_code == 405 and r.headers["allow"] == allow, (method, path, r.text)
        assert r.json()["error"]["code"] == "method_not_allowed"
    r = call(gw, "GET", "/nothing-here")
    assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_url"


def test_unexpected_failure_is_a_json_500_and_logged(gw: Gateway) -> None:
    db = sqlite3.connect(gw.env["RELAYGATE_DATA_DIR"] + "/relaygate.db")
    db.execute("ALTER TABLE request_logs RENAME TO request_logs_away")
    db.commit()
    try:
        r = call(gw, "GET", "/logs")
    finally:
        db.execute("ALTER TABLE request_logs_away RENAME TO request_logs")
        db.commit()
        db.close()
    assert r.status_code == 500 and r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert body["code"] == 500 and body["error"]["code"] == "internal_error"
    assert body["error"]["type"] == "server_error" and body["msg"] == body["error"]["message"]
    assert "request_logs" not in r.text  # no database details leak
    deadline = time.monotonic() + 5
    while "admin API request failed" not in gw.logs() and time.monotonic() < deadline:
        time.sleep(0.1)
    logs = gw.logs()
    assert "admin API request failed" in logs and "Traceback" in logs
    assert call(gw, "GET", "/logs").status_code == 200


def test_a_new_bootstrap_token_works_at_once(gw: Gateway) -> None:
    """The refresh interval is 60 s: only the admin API's re-check can know the token."""
    stop = threading.Event()
    statuses: list[int] = []

    def hammer() -> None:  # unknown tokens all along: they must not starve the real one
        with httpx.Client(timeout=10) as c:
            while not stop.is_set():
                r = c.get(
                    gw.base + "/admin/api/users", headers={"Authorization": "Bearer rg-admin-x"}
                )
                statuses.append(r.status_code)

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        token = run_cli(gw.env, "admin", "bootstrap").splitlines()[-1]
        started = time.monotonic()
        r = call(gw, "GET", "/users", token=token)
        took = time.monotonic() - started
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert r.status_code == 200, r.text
    assert took < 1.5  # one re-check slot (0.5 s) at most, not the refresh interval
    assert statuses and set(statuses) == {401}


def test_an_oversized_admin_body_is_a_json_error(gw: Gateway) -> None:
    """Over the body limit (1 MiB in the test gateway): refused with a JSON error from the
    declared length, before reading, instead of the connection being cut at the edge."""
    big = {"username": "u" * (3 * 1024 * 1024)}
    refused(call(gw, "POST", "/users", big), None)
    assert all(u["username"] != big["username"] for u in gw.admin("GET", "/users")["data"])
