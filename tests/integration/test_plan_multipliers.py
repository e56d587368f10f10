"""A counts plan's per-model multipliers through the admin API of a real gateway (what the
console's plans page uses): set at creation or later, changed, one removed by sending the
map without it, all removed with ``{}`` or ``null``; every wrong value refused with a JSON
4xx naming the field and nothing saved."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from gateway import Gateway


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    g = Gateway(Path(tmp_path_factory.mktemp("gw-plan-multipliers")))
    g.start()
    try:
        yield g
    finally:
        g.stop()


def send(gw: Gateway, method: str, path: str, body: Any = None, raw: bytes | None = None) -> Any:
    """The admin API's answer to a request; ``raw`` is sent as the body as it is."""
    headers = {"Authorization": f"Bearer {gw.admin_token}"}
    if raw is not None:
        headers["Content-Type"] = "application/json"
    return httpx.request(
        method,
        gw.base + "/admin/api" + path,
        json=body if raw is None else None,
        content=raw,
        headers=headers,
        timeout=30,
    )


def refused(r: httpx.Response, param: str | None) -> str:
    assert 400 <= r.status_code < 500, r.text
    assert r.headers["content-type"].startswith("application/json"), r.headers
    error = r.json()["error"]
    assert error["param"] == param, error
    return str(error["message"])


def multipliers(gw: Gateway, pid: int) -> Any:
    return gw.admin("GET", f"/plans/{pid}")["data"]["model_multipliers"]


def test_set_change_remove_and_clear(gw: Gateway) -> None:
    plan = gw.admin(
        "POST",
        "/plans",
        {"name": "chat-50", "kind": "counts", "quota": 50, "model_multipliers": {"gpt-4o": 5}},
    )["data"]
    pid = plan["id"]
    assert plan["model_multipliers"] == {"gpt-4o": 5}
    # added and changed after creation: the map sent is the new map
    patch = {"model_multipliers": {"gpt-4o": 4, "BAAI/bge-reranker-v2-m3": 2}}
    got = gw.admin("PATCH", f"/plans/{pid}", patch)["data"]
    assert got["model_multipliers"] == {"gpt-4o": 4, "BAAI/bge-reranker-v2-m3": 2}
    # another field's edit leaves them alone
    gw.admin("PATCH", f"/plans/{pid}", {"description": "fifty chats"})
    assert multipliers(gw, pid) == {"gpt-4o": 4, "BAAI/bge-reranker-v2-m3": 2}
    # one removed: the map without it
    gw.admin("PATCH", f"/plans/{pid}", {"model_multipliers": {"gpt-4o": 4}})
    assert multipliers(gw, pid) == {"gpt-4o": 4}
    # all removed, with {} or null
    gw.admin("PATCH", f"/plans/{pid}", {"model_multipliers": {}})
    assert multipliers(gw, pid) == {}
    gw.admin("PATCH", f"/plans/{pid}", {"model_multipliers": {"o1": 1_000_000}})
    assert multipliers(gw, pid) == {"o1": 1_000_000}
    gw.admin("PATCH", f"/plans/{pid}", {"model_multipliers": None})
    assert multipliers(gw, pid) == {}
    # a model the catalogue does not know is accepted when the plan covers every model
    gw.admin("PATCH", f"/plans/{pid}", {"model_multipliers": {"my-own-model": 2}})
    assert multipliers(gw, pid) == {"my-own-model": 2}


def test_wrong_multipliers_are_refused_and_nothing_saved(gw: Gateway) -> None:
    pid = gw.admin(
        "POST",
        "/plans",
        {
            "name": "chat-restricted",
            "kind": "counts",
            "quota": 10,
            "models": ["gpt-4o-mini", "gpt-4o"],
            "model_multipliers": {"gpt-4o": 3},
        },
    )["data"]["id"]
    key = "model_multipliers['gpt-4o']"
    whole = "must be a whole number of counts from 1 to 1000000"
    for value, shown in [
        (-1, "-1"),
        (0, "0"),
        (2.5, "2.5"),
        ("3", "'3'"),
        (True, "true"),
        (None, "null"),
        (1_000_001, "1000001"),
        (10**30, "1e+30"),  # beyond 64 bits: a float to the JSON parser
        ([2], "an array"),
    ]:
        r = send(gw, "PATCH", f"/plans/{pid}", {"model_multipliers": {"gpt-4o": value}})
        assert refused(r, key) == f"`{key}` {whole}, not {shown}.", value
    for raw in (
        b'{"model_multipliers": {"gpt-4o": NaN}}',
        b'{"model_multipliers": {"gpt-4o": 1e400}}',
    ):
        r = send(gw, "PATCH", f"/plans/{pid}", raw=raw)
        assert "not valid JSON" in refused(r, None), raw
    too_many = {f"m{i}": 2 for i in range(1001)}
    r = send(gw, "PATCH", f"/plans/{pid}", {"model_multipliers": too_many})
    assert "at most 1000" in refused(r, "model_multipliers")
    r = send(gw, "PATCH", f"/plans/{pid}", {"model_multipliers": {"gpt 4o": 2}})
    assert "whitespace" in refused(r, "model_multipliers key")
    r = send(gw, "PATCH", f"/plans/{pid}", {"model_multipliers": {"x" * 129: 2}})
    assert "at most 128" in refused(r, "model_multipliers key")
    r = send(gw, "PATCH", f"/plans/{pid}", {"model_multipliers": {"": 2}})
    refused(r, "model_multipliers key")
    r = send(gw, "PATCH", f"/plans/{pid}", {"model_multipliers": [["gpt-4o", 2]]})
    refused(r, "model_multipliers")
    # only the plan's own models
    r = send(gw, "PATCH", f"/plans/{pid}", {"model_multipliers": {"o1": 2}})
    assert "'o1', which is not in the plan's `models`" in refused(r, "model_multipliers")
    # nor can the models drop one that has a multiplier
    r = send(gw, "PATCH", f"/plans/{pid}", {"models": ["gpt-4o-mini"]})
    refused(r, "model_multipliers")
    # a good field next to a bad one: the whole edit is refused
    r = send(
        gw,
        "PATCH",
        f"/plans/{pid}",
        {"description": "changed", "model_multipliers": {"gpt-4o": 2, "gpt-4o-mini": 0}},
    )
    refused(r, "model_multipliers['gpt-4o-mini']")
    stored = gw.admin("GET", f"/plans/{pid}")["data"]
    assert stored["model_multipliers"] == {"gpt-4o": 3}
    assert stored["models"] == ["gpt-4o-mini", "gpt-4o"] and stored["description"] == ""

    # multipliers belong to counts plans only
    credit = gw.admin("POST", "/plans", {"name": "monthly", "kind": "credit", "quota": "5"})
    cid = credit["data"]["id"]
    r = send(gw, "PATCH", f"/plans/{cid}", {"model_multipliers": {"gpt-4o": 2}})
    assert "counts plans" in refused(r, "model_multipliers")
    assert multipliers(gw, cid) == {}
    # a plan that does not exist
    r = send(gw, "PATCH", "/plans/99999", {"model_multipliers": {"gpt-4o": 2}})
    assert r.status_code == 404 and r.json()["error"]["param"] == "plan_id", r.text
