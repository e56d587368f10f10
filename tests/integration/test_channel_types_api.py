"""The channel-type catalogue and model discovery through the admin API of a real gateway
(docs/providers.md, "Channel types" and "Model discovery"): the catalogue lists every type
with its key parts, config keys, default base URL, models and prices; discovery asks a
real emulated upstream for its models, previews, merges and replaces a channel's list,
and maps failures (unknown channel, a provider that lists none, bad credentials, a bad
body) to clear errors with nothing changed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from gateway import Gateway

from relaygate.emulator import EmulatorServer, Knobs
from relaygate.emulator.openai import OpenAIEmulator
from relaygate.providers.catalogue import CHANNEL_TYPES


@pytest.fixture(scope="module")
def up() -> Iterator[EmulatorServer]:
    srv = EmulatorServer("openai", knobs=Knobs(api_key="sk-up-good")).start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    g = Gateway(Path(tmp_path_factory.mktemp("gw-types")), {})
    g.start()
    try:
        yield g
    finally:
        g.stop()


def call(gw: Gateway, method: str, path: str, body: Any = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {gw.admin_token}"}
    return httpx.request(
        method, gw.base + "/admin/api" + path, json=body, headers=headers, timeout=20
    )


def test_channel_types_list_and_one(gw: Gateway) -> None:
    r = call(gw, "GET", "/channel-types")
    assert r.status_code == 200, r.text
    types = {t["id"]: t for t in r.json()["data"]}
    assert set(types) == {t.id for t in CHANNEL_TYPES}
    qwen = types["qwen"]
    assert qwen["provider"] == "openai_compat" and qwen["profile"] == "qwen"
    assert qwen["base_url"] == "https://dashscope.aliyuncs.com/compatible-mode/v1"
    assert "qwen-plus" in qwen["models"]
    # the shipped price of qwen-plus, as entered, and what it bills at now
    assert qwen["default_prices"]["qwen-plus"]["currency"] == "CNY"
    assert qwen["default_prices"]["qwen-plus"]["input"] == "0.8"
    assert qwen["price"]["qwen-plus"]["input_price"] == "0.8"
    assert types["baidu"]["key_format"] == "API key|Secret key"
    assert types["tencent"]["key_parts"] == ["SecretId", "SecretKey"]
    assert {c["name"] for c in types["vertex"]["config"]} >= {"project", "location"}
    one = call(gw, "GET", "/channel-types/gemini")
    assert one.status_code == 200 and one.json()["data"]["profile"] == "gemini"
    missing = call(gw, "GET", "/channel-types/nope")
    assert missing.status_code == 404
    assert call(gw, "POST", "/channel-types").status_code == 405


def test_discovery_previews_merges_and_replaces(gw: Gateway, up: EmulatorServer) -> None:
    cid = gw.create_channel(
        name="disc", base_url=up.base_url, keys=["sk-up-good"], models=["gpt-4o-mini", "gone-1"]
    )
    listed = list(OpenAIEmulator.model_ids)
    r = call(gw, "POST", f"/channels/{cid}/discover-models")
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    assert data["models"] == listed
    assert data["new"] == [m for m in listed if m != "gpt-4o-mini"]
    assert data["missing"] == ["gone-1"]
    assert data["applied"] is None
    chans = {c["id"]: c for c in call(gw, "GET", "/channels").json()["data"]}
    assert chans[cid]["models"] == ["gpt-4o-mini", "gone-1"]  # a preview changes nothing

    merged = call(gw, "POST", f"/channels/{cid}/discover-models", {"apply": "merge"}).json()
    assert merged["data"]["applied"] == "merge"
    assert merged["data"]["channel"]["models"] == ["gpt-4o-mini", "gone-1", *data["new"]]

    replaced = call(gw, "POST", f"/channels/{cid}/discover-models", {"apply": "replace"}).json()
    assert replaced["data"]["channel"]["models"] == listed
    again = call(gw, "POST", f"/channels/{cid}/discover-models").json()["data"]
    assert again["new"] == [] and again["missing"] == []


def test_discovery_failures_are_clear_and_change_nothing(gw: Gateway, up: EmulatorServer) -> None:
    bad = gw.create_channel(
        name="disc-badkey", base_url=up.base_url, keys=["sk-wrong"], models=["m-1"]
    )
    r = call(gw, "POST", f"/channels/{bad}/discover-models", {"apply": "replace"})
    assert r.status_code == 502, r.text
    assert r.json()["error"]["code"] == "upstream_auth_failed"
    assert "sk-wrong" not in r.text
    chans = {c["id"]: c for c in call(gw, "GET", "/channels").json()["data"]}
    assert chans[bad]["models"] == ["m-1"]

    assert call(gw, "POST", "/channels/999999/discover-models").status_code == 404
    r = call(gw, "POST", f"/channels/{bad}/discover-models", {"apply": "all"})
    assert r.status_code == 403 and r.json()["error"]["param"] == "apply"  # seed table: 403
    r = call(gw, "POST", f"/channels/{bad}/discover-models", {"aply": "merge"})
    assert r.json()["error"]["param"] == "aply"
    r = call(gw, "POST", "/channels/abc/discover-models")
    assert r.status_code == 403 and r.json()["error"]["param"] == "channel_id"

    # Azure deployments are not listed by /models: 501, said plainly
    az = gw.create_channel(
        name="disc-azure",
        profile="azure",
        base_url="http://127.0.0.1:9",
        keys=["k"],
        models=["gpt-4o"],
        force=True,
    )
    r = call(gw, "POST", f"/channels/{az}/discover-models")
    assert r.status_code == 501, r.text
    assert r.json()["error"]["code"] == "not_implemented"

    # an upstream that does not answer in time
    dead = gw.create_channel(
        name="disc-dead", base_url="http://127.0.0.1:9/v1", keys=["k"], models=["m"], force=True
    )
    r = call(gw, "POST", f"/channels/{dead}/discover-models")
    assert r.status_code == 502, r.text


@pytest.mark.parametrize(
    ("emulator", "provider", "expected"),
    [
        ("anthropic", "anthropic", ["claude-sonnet-4-20250514", "claude-3-5-haiku-20241022"]),
        ("gemini", "gemini", None),  # the emulator's own list, without the models/ prefix
    ],
)
def test_discovery_on_native_providers(
    gw: Gateway, emulator: str, provider: str, expected: list[str] | None
) -> None:
    srv = EmulatorServer(emulator, knobs=Knobs(api_key="up-native-key")).start()
    try:
        cid = gw.create_channel(
            name=f"disc-{emulator}",
            provider=provider,
            base_url=srv.base_url,
            keys=["up-native-key"],
            models=["placeholder"],
        )
        r = call(gw, "POST", f"/channels/{cid}/discover-models")
        assert r.status_code == 200, r.text
        models = r.json()["data"]["models"]
        if expected is not None:
            assert models == expected
        else:
            assert "gemini-2.5-flash" in models
            assert not any(m.startswith("models/") for m in models)
        assert r.json()["data"]["missing"] == ["placeholder"]
        # the upstream saw our credential in its own header
        last = srv.stats.last_headers
        assert last is not None
        assert "up-native-key" in (last.get("x-api-key", "") + last.get("x-goog-api-key", ""))
    finally:
        srv.stop()
