"""The price catalogue against a real gateway: admin CRUD, bulk import (all or nothing),
bad input refused with a clear error and nothing written, price groups, and the public
catalogue (``/v1/pricing``, ``/api/pricing``). The store's transactions are checked on
SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from gateway import Gateway

from relaygate.storage.base import Conflict
from relaygate.storage.repo import Repository

PUBLIC_FIELDS = {
    "model",
    "provider",
    "input_price",
    "output_price",
    "cached_input_price",
    "per",
    "context_window",
    "max_output",
    "description",
}


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    g = Gateway(Path(tmp_path_factory.mktemp("gw-prices")))
    g.start()
    try:
        served = ["gpt-4o-mini", "deepseek-chat", "house-model", "Qwen/Qwen3-8B"]
        g.create_channel(name="up", base_url="http://127.0.0.1:9/v1", models=served)
        g.create_channel(
            name="off", base_url="http://127.0.0.1:9/v1", models=["gpt-4o"], status="disabled"
        )
        yield g
    finally:
        g.stop()


def call(gw: Gateway, method: str, path: str, body: Any = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {gw.admin_token}"}
    return httpx.request(
        method, gw.base + "/admin/api" + path, json=body, headers=headers, timeout=10
    )


def refused(r: httpx.Response, param: str | None, status: int = 403) -> str:
    """A clear JSON error naming ``param``; returns its message."""
    assert r.status_code == status, r.text
    body = r.json()
    assert body["code"] == status and body["error"]["param"] == param, body
    return str(body["error"]["message"])


def prices(gw: Gateway) -> dict[str, dict[str, Any]]:
    return {row["model"]: row for row in gw.admin("GET", "/prices")["data"]}


def public(gw: Gateway, path: str = "/v1/pricing") -> dict[str, Any]:
    r = httpx.get(gw.base + path, timeout=10)  # no key
    assert r.status_code == 200, r.text
    return dict(r.json())


# ---- admin CRUD ----------------------------------------------------------------------
def test_defaults_are_listed_and_one_price_can_be_set_changed_and_reverted(gw: Gateway) -> None:
    listed = prices(gw)
    mini = listed["gpt-4o-mini"]
    assert mini["origin"] == "default" and mini["currency"] == "USD" and mini["input"] == "0.15"
    assert mini["billed"]["input"] == "1.08" and mini["billed"]["currency"] == "CNY"
    assert mini["source"].startswith("https://")

    body = {"model": "gpt-4o-mini", "per": "1k", "input": 0.0005, "output": "0.0020"}
    row = gw.admin("POST", "/prices", body)["data"]
    assert (row["origin"], row["currency"], row["per"]) == ("db", "CNY", "1k")
    assert (row["input"], row["output"], row["cached_input"]) == ("0.0005", "0.002", None)
    assert row["billed"]["input"] == "0.5" and row["billed"]["cached_input"] == "0.5"
    assert row["updated_at"]

    row = gw.admin("PATCH", "/prices/gpt-4o-mini", {"output": "0.003", "cached_input": "0.0001"})
    row = row["data"]
    assert (row["input"], row["output"], row["cached_input"]) == ("0.0005", "0.003", "0.0001")
    assert gw.admin("GET", "/prices/gpt-4o-mini")["data"] == row

    # PATCH of a model priced only by the defaults stores the default with the change
    row = gw.admin("PATCH", "/prices/gpt-4o", {"description": "house note"})["data"]
    assert (row["origin"], row["input"], row["description"]) == ("db", "2.5", "house note")

    assert gw.admin("DELETE", "/prices/gpt-4o-mini") == {"code": 0, "msg": "ok"}
    assert gw.admin("GET", "/prices/gpt-4o-mini")["data"]["origin"] == "default"
    msg = refused(call(gw, "DELETE", "/prices/gpt-4o-mini"), "model", 404)
    assert "default stays" in msg
    gw.admin("DELETE", "/prices/gpt-4o")
    refused(call(gw, "GET", "/prices/no-such-model"), "model", 404)
    refused(call(gw, "PATCH", "/prices/no-such-model", {"input": "1"}), "model", 404)


def test_model_names_with_a_slash_and_unknown_models_with_force(gw: Gateway) -> None:
    body = {"model": "Qwen/Qwen3-8B", "input": "0.5", "output": "2"}
    assert gw.admin("POST", "/prices", body)["data"]["origin"] == "db"  # a channel lists it
    assert gw.admin("GET", "/prices/Qwen/Qwen3-8B")["data"]["input"] == "0.5"
    gw.admin("DELETE", "/prices/Qwen/Qwen3-8B")
    assert "Qwen/Qwen3-8B" not in prices(gw)

    ghost = {"model": "gpt-99-typo", "input": "1", "output": "1"}
    msg = refused(call(gw, "POST", "/prices", ghost), "model")
    assert "gpt-99-typo" in msg and '"force": true' in msg
    assert "gpt-99-typo" not in prices(gw)
    row = gw.admin("POST", "/prices", {**ghost, "force": True})["data"]
    assert row["model"] == "gpt-99-typo" and "force" not in row
    # once stored, it can be replaced without force again
    assert gw.admin("POST", "/prices", {**ghost, "input": "2"})["data"]["input"] == "2"
    gw.admin("DELETE", "/prices/gpt-99-typo")


def test_bulk_import_is_all_or_nothing(gw: Gateway) -> None:
    rows = [
        {"model": "house-model", "input": "1", "output": "2", "description": "ours"},
        {"model": "deepseek-chat", "input": "2", "output": "8", "cached_input": "0.2"},
        {"model": "bulk-extra", "input": "3", "output": "3", "force": True},
    ]
    out = gw.admin("PUT", "/prices", {"prices": rows})
    assert out["count"] == 3 and [r["model"] for r in out["data"]] == [r["model"] for r in rows]
    listed = prices(gw)
    assert listed["house-model"]["description"] == "ours"
    assert listed["deepseek-chat"]["origin"] == "db"
    assert listed["deepseek-chat"]["cached_input"] == "0.2"

    before = prices(gw)
    bad = [
        {"model": "house-model", "input": "9", "output": "9"},  # would change a stored row
        {"model": "gpt-4o-mini", "input": "1", "output": "1"},
        {"model": "gpt-4.1", "input": "-0.5", "output": "1"},
    ]
    msg = refused(call(gw, "PUT", "/prices", {"prices": bad}), "prices[2].input")
    assert msg.startswith("prices[2] (gpt-4.1): ") and "negative" in msg
    dup = [bad[0], {"model": "house-model", "input": "1", "output": "1"}]
    msg = refused(call(gw, "PUT", "/prices", {"prices": dup}), "prices[1].model")
    assert "prices[0]" in msg
    refused(call(gw, "PUT", "/prices", {"prices": [{"model": "nope-1", "input": "1",
                                                    "output": "1"}]}), "prices[0].model")  # fmt: skip
    refused(call(gw, "PUT", "/prices", {"prices": []}), "prices")
    refused(call(gw, "PUT", "/prices", {"prices": [5]}), "prices[0]")
    refused(call(gw, "PUT", "/prices", {"prices": rows, "mode": "merge"}), "mode")
    assert prices(gw) == before  # nothing of a refused import was written

    forced = {"prices": [{"model": "nope-1", "input": "1", "output": "1"}], "force": True}
    assert gw.admin("PUT", "/prices", forced)["count"] == 1
    for model in ("house-model", "deepseek-chat", "bulk-extra", "nope-1"):
        gw.admin("DELETE", f"/prices/{model}")


BAD_PRICES: list[tuple[dict[str, Any], str | None, str]] = [
    ({"input": "-1"}, "input", "negative"),
    ({"input": -0.0001}, "input", "negative"),
    ({"input": "abc"}, "input", "must be a number"),
    ({"input": True}, "input", "must be a number"),
    ({"input": None}, "input", "must be a number"),
    ({"input": "NaN"}, "input", "finite"),
    ({"input": "Infinity"}, "input", "finite"),
    ({"input": "1e10"}, "input", "too large"),
    ({"input": 10**12}, "input", "too large"),
    ({"output": "0.00000000001"}, "output", "more than 10 decimals"),
    ({"cached_input": "1" * 41}, "cached_input", "must be a number"),
    ({"cache_write_1h": "-2"}, "cache_write_1h", "negative"),
    ({"per_request": "x"}, "per_request", "must be a number"),
    ({"currency": "EUR"}, "currency", "'CNY', 'USD'"),
    ({"per": "1g"}, "per", "'1k', '1m'"),
    ({"context_window": 0}, "context_window", "integer from 1"),
    ({"context_window": 10**9}, "context_window", "integer from 1"),
    ({"max_output": "4096"}, "max_output", "must be an integer"),
    ({"model": ""}, "model", "must not be empty"),
    ({"model": "has space"}, "model", "whitespace"),
    ({"model": "m" * 129}, "model", "at most 128"),
    ({"colour": "red"}, "colour", "Unknown field"),
    ({"force": "yes"}, "force", "true or false"),
]


@pytest.mark.parametrize(("change", "param", "text"), BAD_PRICES)
def test_bad_prices_are_refused_and_nothing_is_written(
    gw: Gateway, change: dict[str, Any], param: str | None, text: str
) -> None:
    before = prices(gw)
    body = {"model": "house-model", "input": "1", "output": "2", **change}
    msg = refused(call(gw, "POST", "/prices", body), param)
    assert text in msg, msg
    assert prices(gw) == before


def test_missing_fields_and_bodies_that_are_not_objects(gw: Gateway) -> None:
    refused(call(gw, "POST", "/prices", {"model": "house-model", "output": "1"}), "input")
    refused(call(gw, "POST", "/prices", {"input": "1", "output": "1"}), "model")
    refused(call(gw, "POST", "/prices", ["house-model"]), None)
    refused(call(gw, "PATCH", "/prices/gpt-4o", {}), None)
    refused(call(gw, "PATCH", "/prices/gpt-4o", {"model": "other"}), "model")
    refused(call(gw, "PATCH", "/prices/gpt-4o", {"input": "-3"}), "input")
    assert prices(gw)["gpt-4o"]["origin"] == "default"


def test_price_groups(gw: Gateway) -> None:
    groups = gw.admin("GET", "/price-groups")["data"]
    assert {"name": "default", "multiplier": "1", "origin": "default"}.items() <= groups[0].items()
    vip = gw.admin("POST", "/price-groups", {"name": "vip", "multiplier": "0.80"})["data"]
    assert (vip["multiplier"], vip["origin"]) == ("0.8", "db")
    names = [g["name"] for g in gw.admin("GET", "/price-groups")["data"]]
    assert names == ["default", "vip"]
    for body, param in [
        ({"name": "vip", "multiplier": "0"}, "multiplier"),
        ({"name": "vip", "multiplier": "-1"}, "multiplier"),
        ({"name": "vip", "multiplier": "100.01"}, "multiplier"),
        ({"name": "vip", "multiplier": "abc"}, "multiplier"),
        ({"name": "vip", "multiplier": "0.0000001"}, "multiplier"),
        ({"name": "VIP!", "multiplier": "1"}, "name"),
        ({"name": "vip"}, "multiplier"),
        ({"name": "vip", "multiplier": "1", "rate": 2}, "rate"),
    ]:
        refused(call(gw, "POST", "/price-groups", body), param)
    assert [g["multiplier"] for g in gw.admin("GET", "/price-groups")["data"]] == ["1", "0.8"]
    gw.admin("DELETE", "/price-groups/vip")
    refused(call(gw, "DELETE", "/price-groups/vip"), "name", 404)


def test_wrong_methods_are_405(gw: Gateway) -> None:
    for method, path, allow in [
        ("DELETE", "/prices", "GET, POST, PUT"),
        ("POST", "/prices/gpt-4o", "GET, PATCH, DELETE"),
        ("PUT", "/price-groups", "GET, POST"),
        ("GET", "/price-groups/vip", "DELETE"),
    ]:
        r = call(gw, method, path)
        assert r.status_code == 405 and r.headers["allow"] == allow, (method, path, r.text)


def test_the_admin_api_needs_an_admin_token(gw: Gateway) -> None:
    r = httpx.get(gw.base + "/admin/api/prices", timeout=10)
    assert r.status_code == 401


# ---- public catalogue -----------------------------------------------------------------
def test_public_catalogue_lists_priced_models_of_enabled_channels(gw: Gateway) -> None:
    body = public(gw)
    assert (body["code"], body["msg"], body["object"], body["currency"]) == (0, "ok", "list", "CNY")
    rows = {row["model"]: row for row in body["data"]}
    # gpt-4o: only a disabled channel; claude-*: no channel; house-model: no price
    assert set(rows) == {"gpt-4o-mini", "deepseek-chat"}
    mini = rows["gpt-4o-mini"]
    assert set(mini) == PUBLIC_FIELDS
    assert (mini["input_price"], mini["output_price"], mini["cached_input_price"]) == (
        "0.00108",
        "0.00432",
        "0.00054",
    )
    assert (mini["per"], mini["context_window"], mini["max_output"]) == ("1k", 128000, 16384)
    assert mini["provider"] == "openai" and mini["description"]
    assert public(gw, "/api/pricing")["data"] == body["data"]
    per_m = {r["model"]: r for r in public(gw, "/v1/pricing?per=1m")["data"]}
    assert per_m["gpt-4o-mini"]["input_price"] == "1.08" and per_m["gpt-4o-mini"]["per"] == "1m"


def test_public_catalogue_follows_admin_changes(gw: Gateway) -> None:
    gw.admin("POST", "/prices", {"model": "house-model", "per": "1k", "input": "0.0005",
                                 "output": "0.001", "description": "Our own"})  # fmt: skip
    rows = {row["model"]: row for row in public(gw)["data"]}
    assert rows["house-model"]["input_price"] == "0.0005"
    assert rows["house-model"]["description"] == "Our own"
    gw.admin("DELETE", "/prices/house-model")
    assert "house-model" not in {row["model"] for row in public(gw)["data"]}


def test_media_prices_round_trip_and_bad_ones_are_refused(gw: Gateway) -> None:
    body = {"model": "house-model", "currency": "USD", "input": "0", "output": "0",
            "per_image": "0.04", "per_second": "0.1", "per_character": "0.000015",
            "training": "3", "image_prices": {"1024X1792/HD": 0.12, "hd": "0.08"}}  # fmt: skip
    row = gw.admin("POST", "/prices", body)["data"]
    assert row["image_prices"] == {"1024x1792/hd": "0.12", "hd": "0.08"}
    assert (row["per_character"], row["training"], row["per_second"]) == ("0.000015", "3", "0.1")
    assert row["billed"]["per_character"] == "0.000108"
    assert row["billed"]["image_prices"] == {"1024x1792/hd": "0.864", "hd": "0.576"}
    assert gw.admin("GET", "/prices/house-model")["data"] == row
    row = gw.admin("PATCH", "/prices/house-model", {"training": "5"})["data"]
    assert row["training"] == "5" and row["image_prices"] == {"1024x1792/hd": "0.12", "hd": "0.08"}

    msg = refused(call(gw, "POST", "/prices", {**body, "image_prices": {"huge": "1"}}),
                  "image_prices")  # fmt: skip
    assert "1024x1792" in msg
    bad_value = {"image_prices": {"hd": "-1"}}
    refused(call(gw, "PATCH", "/prices/house-model", bad_value), "image_prices.hd")
    refused(call(gw, "PATCH", "/prices/house-model", {"per_character": "x"}), "per_character")
    assert gw.admin("GET", "/prices/house-model")["data"]["training"] == "5"  # nothing written

    public_row = {r["model"]: r for r in public(gw)["data"]}["house-model"]
    assert public_row["image_prices"] == {"1024x1792/hd": "0.864", "hd": "0.576"}
    assert (public_row["image_price"], public_row["character_price"]) == ("0.288", "0.000108")
    assert public_row["training_price"] == "0.036"  # 36 yuan per 1M = 0.036 per 1K
    gw.admin("DELETE", "/prices/house-model")


def test_public_catalogue_errors(gw: Gateway) -> None:
    r = httpx.get(gw.base + "/v1/pricing?per=1g", timeout=10)
    assert r.status_code == 403 and r.json()["error"]["param"] == "per"
    r = httpx.post(gw.base + "/v1/pricing", json={}, timeout=10)
    assert r.status_code == 405 and r.headers["allow"] == "GET"


# ---- the store on both databases -------------------------------------------------------
async def test_store_upserts_in_one_transaction_and_bumps_the_revision(repo: Repository) -> None:
    store = repo.prices
    rev = await repo.revision()
    row = {"model": "a", "currency": "CNY", "per": "1m", "input": "1", "output": "2"}
    assert await store.upsert_many([row, {**row, "model": "b"}]) == 2
    assert await repo.revision() == rev + 1
    got = await store.get("a")
    assert got is not None and got["input"] == "1" and got["updated_at"].tzinfo is not None
    await store.upsert({**row, "input": "5"})
    assert [(r["model"], r["input"]) for r in await store.list()] == [("a", "5"), ("b", "1")]
    rev = await repo.revision()
    with pytest.raises(Conflict):  # the second row breaks NOT NULL: the first is not kept
        await store.upsert_many([{**row, "model": "c"}, {**row, "model": "d", "input": None}])
    assert await store.get("c") is None and await repo.revision() == rev
    assert await store.delete("a") and not await store.delete("a")
    media = {**row, "model": "img", "training": "3", "image_prices": {"1024x1024/hd": "0.08"}}
    await store.upsert(media)
    got = await store.get("img")
    assert got is not None and got["image_prices"] == {"1024x1024/hd": "0.08"}
    assert got["training"] == "3" and got["per_character"] is None
    assert await store.delete("img")
    await store.upsert_group({"name": "vip", "multiplier": "0.8", "description": ""})
    await store.upsert_group({"name": "vip", "multiplier": "0.9", "description": "x"})
    assert await store.list_groups() == [{"name": "vip", "multiplier": "0.9", "description": "x"}]
    assert await store.delete_group("vip") and not await store.delete_group("vip")
