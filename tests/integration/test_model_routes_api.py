"""Model routes and the channel routing rules against a real gateway, on SQLite and on
PostgreSQL: admin CRUD of ``/admin/api/model-routes``; a self-alias, a cycle (the message
shows the path), an unknown fallback (accepted with ``force``) and a route that serves
nothing refused with nothing saved; the channel routing fields of ``config``; a save that
leaves every enabled channel of a model at weight 0 refused; a base URL whose host does not
resolve refused unless forced."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from gateway import Gateway, fresh_pg_database

DEAD = "http://127.0.0.1:9/v1"  # resolves; nothing listens (no request is relayed here)


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def gw(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    def run(extra: dict[str, str]) -> Iterator[Gateway]:
        g = Gateway(Path(tmp_path_factory.mktemp(f"gw-routes-{request.param}")), extra)
        g.start()
        try:
            yield g
        finally:
            g.stop()

    if request.param == "sqlite":
        yield from run({})
    else:
        with fresh_pg_database("rg_routes_") as url:
            yield from run({"RELAYGATE_DATABASE_URL": url})


def call(gw: Gateway, method: str, path: str, body: Any = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {gw.admin_token}"}
    return httpx.request(
        method, gw.base + "/admin/api" + path, json=body, headers=headers, timeout=10
    )


def ok(r: httpx.Response, status: int = 200) -> Any:
    assert r.status_code == status, r.text
    return r.json()["data"] if "data" in r.json() else r.json()


def refused(r: httpx.Response, param: str | None, status: int = 403) -> str:
    """A JSON error naming ``param``; returns its message."""
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["param"] == param, err
    return str(err["message"])


def test_model_routes_crud_and_refusals(gw: Gateway) -> None:
    gw.create_channel(name="rt-up", base_url=DEAD, models=["rt-1106", "rt-0613"])
    made = ok(
        call(
            gw,
            "POST",
            "/model-routes",
            {
                "name": "rt-16k",
                "fallbacks": ["rt-1106", "rt-0613"],
                "hedge_after_ms": 800,
                "description": "16k is served by 1106, then 0613",
            },
        ),
        201,
    )
    assert made["name"] == "rt-16k" and made["fallbacks"] == ["rt-1106", "rt-0613"]
    assert made["hedge_after_ms"] == 800
    assert ok(call(gw, "GET", "/model-routes/rt-16k")) == made
    # a name with "/" is one path
    ok(call(gw, "POST", "/model-routes", {"name": "Org/rt-x", "fallbacks": ["rt-16k"]}), 201)
    assert ok(call(gw, "GET", "/model-routes/Org/rt-x"))["fallbacks"] == ["rt-16k"]
    # a served model may have a route of its own just for hedging
    ok(call(gw, "POST", "/model-routes", {"name": "rt-1106", "hedge_after_ms": 50}), 201)
    before = ok(call(gw, "GET", "/model-routes"))
    assert [r["name"] for r in before] == ["Org/rt-x", "rt-1106", "rt-16k"]

    # an alias that names itself
    msg = refused(
        call(gw, "POST", "/model-routes", {"name": "rt-self", "fallbacks": ["rt-1106", "rt-self"]}),
        "fallbacks",
    )
    assert "names itself" in msg
    # an unknown fallback: refused, then accepted with force
    msg = refused(
        call(gw, "POST", "/model-routes", {"name": "rt-d", "fallbacks": ["rt-e"]}), "fallbacks"
    )
    assert "'rt-e'" in msg and '"force": true' in msg
    assert call(gw, "GET", "/model-routes/rt-d").status_code == 404
    ok(
        call(gw, "POST", "/model-routes", {"name": "rt-d", "fallbacks": ["rt-e"], "force": True}),
        201,
    )
    # a cycle through another route, with its path
    msg = refused(
        call(gw, "POST", "/model-routes", {"name": "rt-e", "fallbacks": ["rt-d"]}), "fallbacks"
    )
    assert "rt-e → rt-d → rt-e" in msg
    # a patch that would close a cycle is refused and nothing is saved
    msg = refused(
        call(gw, "PATCH", "/model-routes/rt-16k", {"fallbacks": ["rt-0613", "Org/rt-x"]}),
        "fallbacks",
    )
    assert "rt-16k → Org/rt-x → rt-16k" in msg
    assert ok(call(gw, "GET", "/model-routes/rt-16k")) == made
    # a route that would serve nothing; bad fields; a duplicate
    assert "serve nothing" in refused(
        call(gw, "POST", "/model-routes", {"name": "rt-ghost"}), "fallbacks"
    )
    refused(call(gw, "POST", "/model-routes", {"name": "rt z", "fallbacks": ["rt-1106"]}), "name")
    refused(
        call(
            gw,
            "POST",
            "/model-routes",
            {"name": "rt-h", "fallbacks": ["rt-1106"], "hedge_after_ms": 10},
        ),
        "hedge_after_ms",
    )
    refused(
        call(gw, "POST", "/model-routes", {"name": "rt-h", "fallbacks": ["rt-1106"], "weight": 1}),
        "weight",
    )
    refused(
        call(gw, "POST", "/model-routes", {"name": "rt-h", "fallbacks": ["rt-1106", "rt-1106"]}),
        "fallbacks",
    )
    r = call(gw, "POST", "/model-routes", {"name": "rt-16k", "fallbacks": ["rt-0613"]})
    assert r.status_code == 403 and r.json()["error"]["code"] == "conflict"
    refused(call(gw, "PATCH", "/model-routes/rt-16k", {"name": "rt-17k"}), "name")
    assert call(gw, "PUT", "/model-routes/rt-16k", {}).status_code == 405

    # a patch checked as a whole: allowed changes are saved
    upd = ok(
        call(
            gw, "PATCH", "/model-routes/rt-16k", {"fallbacks": ["rt-0613"], "hedge_after_ms": None}
        )
    )
    assert upd["fallbacks"] == ["rt-0613"] and upd["hedge_after_ms"] is None
    assert upd["created_at"] == made["created_at"]

    # delete: a route still named as the fallback of an alias is kept; others go
    msg = refused(call(gw, "DELETE", "/model-routes/rt-16k"), "name")
    assert "'Org/rt-x'" in msg
    ok(call(gw, "DELETE", "/model-routes/Org/rt-x"))
    ok(call(gw, "DELETE", "/model-routes/rt-16k"))
    assert call(gw, "GET", "/model-routes/rt-16k").status_code == 404
    assert call(gw, "DELETE", "/model-routes/rt-16k").status_code == 404
    assert [r["name"] for r in ok(call(gw, "GET", "/model-routes"))] == ["rt-1106", "rt-d"]


def test_channel_routing_fields_and_weights(gw: Gateway) -> None:
    config = {
        "groups": ["default", "vip"],
        "timeouts": {"connect": 2, "first_byte": 20, "idle": 30},
        "max_concurrency": 16,
        "key_concurrency": 4,
        "queue_timeout": 2.5,
        "queue_size": 100,
        "test_model": "w-m",
    }
    main = gw.create_channel(name="w-main", base_url=DEAD, models=["w-m"], config=config)
    shown = next(c for c in ok(call(gw, "GET", "/channels")) if c["id"] == main)
    assert shown["config"] == config and shown["status_reason"] is None
    bad = {"name": "w-bad", "base_url": DEAD, "models": ["w-m"]}
    refused(
        call(gw, "POST", "/channels", {**bad, "config": {"timeouts": {"read": 5}}}),
        "config.timeouts.read",
    )
    refused(
        call(gw, "POST", "/channels", {**bad, "config": {"queue_size": -1}}), "config.queue_size"
    )
    refused(
        call(gw, "POST", "/channels", {**bad, "config": {"groups": ["a b"]}}), "config.groups[0]"
    )
    refused(call(gw, "PATCH", f"/channels/{main}", {"status": "auto_disabled"}), "status")

    # weight 0 is a standby: fine next to a weighted channel
    standby = gw.create_channel(name="w-standby", base_url=DEAD, models=["w-m"], weight=0)
    channels_before = ok(call(gw, "GET", "/channels"))
    # ... but never all of a model's enabled channels
    msg = refused(call(gw, "PATCH", f"/channels/{main}", {"weight": 0}), "weight")
    assert "`w-m` has weight 0" in msg and "none would get traffic" in msg
    refused(call(gw, "PATCH", f"/channels/{main}", {"status": "disabled"}), "status")
    refused(call(gw, "PATCH", f"/channels/{main}", {"models": ["w-other"]}), "models")
    refused(call(gw, "DELETE", f"/channels/{main}"), None)
    refused(call(gw, "POST", "/channels", {**bad, "models": ["w-new"], "weight": 0}), "weight")
    assert ok(call(gw, "GET", "/channels")) == channels_before
    # once the standby has a weight, the other may go
    ok(call(gw, "PATCH", f"/channels/{standby}", {"weight": 2}))
    ok(call(gw, "PATCH", f"/channels/{main}", {"weight": 0}))


def test_unresolvable_base_url_refused_unless_forced(gw: Gateway) -> None:
    body = {"name": "dns", "base_url": "http://no-such-host.invalid/v1", "models": ["dns-m"]}
    msg = refused(call(gw, "POST", "/channels", body), "base_url")
    assert "'no-such-host.invalid'" in msg and '"force": true' in msg
    assert not [c for c in ok(call(gw, "GET", "/channels")) if c["name"] == "dns"]
    forced = ok(call(gw, "POST", "/channels", {**body, "force": True}), 201)
    assert forced["base_url"] == "http://no-such-host.invalid/v1" and "force" not in forced
    # a channel proxy resolves the host itself: no check
    proxied = {**body, "name": "dns-proxied", "config": {"proxy": "http://127.0.0.1:3128"}}
    ok(call(gw, "POST", "/channels", proxied), 201)
    # a patch that changes the base URL is checked; one that keeps it is not
    cid = gw.create_channel(name="dns-ok", base_url=DEAD, models=["dns-m2"])
    change = {"base_url": "https://no-such-host.invalid"}
    refused(call(gw, "PATCH", f"/channels/{cid}", change), "base_url")
    ok(
        call(
            gw,
            "PATCH",
            f"/channels/{forced['id']}",
            {"base_url": forced["base_url"], "priority": 1},
        )
    )
    assert ok(call(gw, "PATCH", f"/channels/{cid}", {**change, "force": True}))["base_url"] == (
        "https://no-such-host.invalid"
    )
    ok(call(gw, "PATCH", f"/channels/{cid}", {"base_url": "http://localhost:9/v1"}))
    refused(call(gw, "PATCH", f"/channels/{cid}", {"force": True}), None)  # nothing to change
