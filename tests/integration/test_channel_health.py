"""Channel health (docs/channel-health.md) against a running gateway and real emulators:

* ``POST /admin/api/channels/{id}/test``: a working channel (latency, the mapped model sent
  as one "ping" with max_tokens 1), a wrong upstream key, a hanging upstream cut at the
  test timeout, an unreachable port, a disabled channel, an unknown channel, bad input;
* rejected keys and auto-disable: ``ChannelHealth`` run in this process on the gateway's
  own database (the attempt loop's call), the channel leaving rotation in the gateway, the
  gateway's scheduler re-enabling it once the upstream takes the key again, and leaving a
  channel the operator disabled alone; one rejected key of two leaves rotation while the
  channel stays enabled;
* the rejected keys shared by two workers through Redis.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from gateway import Gateway, free_port

from relaygate.catalog import Catalog
from relaygate.emulator import EmulatorServer, Knobs
from relaygate.providers.registry import AdaptorRegistry
from relaygate.routing.health import AUTH_FAILED, ChannelHealth
from relaygate.routing.rejected import SHARED_KEY
from relaygate.routing.router import Router
from relaygate.routing.tokens import TokenCache
from relaygate.settings import Settings
from relaygate.sharedstate.base import SharedState
from relaygate.sharedstate.memory import InProcessState
from relaygate.sharedstate.redis import RedisState
from relaygate.storage.crypto import Secrets, load_or_create_secret
from relaygate.storage.db import create_engine
from relaygate.storage.records import ChannelRecord
from relaygate.storage.repo import Repository
from relaygate.transport.factory import create_transport

REDIS_URL = os.environ.get("RELAYGATE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
TEST_TIMEOUT = 1.0  # RELAYGATE_CHANNEL_TEST_TIMEOUT of the gateway
INTERVAL = 0.5  # RELAYGATE_CHANNEL_TEST_INTERVAL of the gateway


@pytest.fixture(scope="module")
def good() -> Iterator[EmulatorServer]:
    with EmulatorServer("openai", knobs=Knobs(api_key="sk-good-key")) as emu:
        yield emu


@pytest.fixture(scope="module")
def hanging() -> Iterator[EmulatorServer]:
    with EmulatorServer("openai", knobs=Knobs(hang=True)) as emu:
        yield emu


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    gw = Gateway(
        Path(tmp_path_factory.mktemp("gw-health")),
        {
            "RELAYGATE_CHANNEL_TEST_TIMEOUT": str(TEST_TIMEOUT),
            "RELAYGATE_CHANNEL_TEST_INTERVAL": str(INTERVAL),
            "RELAYGATE_BILLING": "0",
        },
    ).start()
    try:
        yield gw
    finally:
        gw.stop()


def channel(gw: Gateway, base_url: str, keys: list[str], **fields: Any) -> int:
    return gw.create_channel(
        name=fields.pop("name", "ch-" + uuid.uuid4().hex[:6]),
        provider="openai_compat",
        profile="openai",
        base_url=base_url,
        keys=keys,
        models=fields.pop("models", ["m-" + uuid.uuid4().hex[:6]]),
        **fields,
    )


def probe(gw: Gateway, cid: int | str, body: Any = None) -> httpx.Response:
    return httpx.post(
        f"{gw.base}/admin/api/channels/{cid}/test",
        json=body,
        headers={"Authorization": f"Bearer {gw.admin_token}"},
        timeout=30,
    )


def listed(gw: Gateway, cid: int) -> dict[str, Any]:
    chans = gw.admin("GET", "/channels")["data"]
    return next(c for c in chans if c["id"] == cid)


def wait_status(gw: Gateway, cid: int, status: str, within: float) -> dict[str, Any]:
    deadline = time.monotonic() + within
    while True:
        ch = listed(gw, cid)
        if ch["status"] == status or time.monotonic() > deadline:
            return ch
        time.sleep(0.1)


def wait_listing(gw: Gateway, key: str, model: str, listed: bool) -> bool:
    """Wait until ``GET /v1/models`` lists ``model`` (or no longer does): the models of
    the enabled channels in the gateway's snapshot."""
    deadline = time.monotonic() + 5
    while True:
        r = httpx.get(gw.base_url + "/models", headers={"Authorization": f"Bearer {key}"})
        assert r.status_code == 200, r.text
        if (model in {m["id"] for m in r.json()["data"]}) == listed:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)


# ---- the admin test call -----------------------------------------------------------------
def test_working_channel_reports_latency_and_sends_a_minimal_request(
    gw: Gateway, good: EmulatorServer
) -> None:
    cid = channel(
        gw,
        good.base_url,
        ["sk-good-key"],
        models=["health-a", "health-b"],
        model_mapping={"health-a": "upstream-a"},
    )
    good.stats.reset()
    r = probe(gw, cid)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["code"] == 0  # the admin envelope
    assert out["channel_id"] == cid
    assert out["model"] == "health-a"  # the first model of the channel
    assert out["ok"] is True
    assert out["status"] == 200
    assert out["error"] is None
    assert isinstance(out["latency_ms"], int) and 0 <= out["latency_ms"] < 5000
    sent = good.stats.snapshot()["recorded"][-1]["body"]
    assert sent["model"] == "upstream-a"  # mapped by the router
    assert sent["messages"] == [{"role": "user", "content": "ping"}]
    assert sent["max_tokens"] == 1
    assert "stream" not in sent or sent["stream"] is False

    # a model given in the body; latency reflects the upstream's
    good.configure(latency_ms=300)
    try:
        out = probe(gw, cid, {"model": "health-b"}).json()
    finally:
        good.configure(latency_ms=0)
    assert out["ok"] is True and out["model"] == "health-b"
    assert out["latency_ms"] >= 300
    assert good.stats.snapshot()["recorded"][-1]["body"]["model"] == "health-b"


def test_test_model_from_the_channel_config(gw: Gateway, good: EmulatorServer) -> None:
    cid = channel(
        gw,
        good.base_url,
        ["sk-good-key"],
        models=["first", "cheap"],
        config={"test_model": "cheap"},
    )
    out = probe(gw, cid).json()
    assert out["ok"] is True and out["model"] == "cheap"


def test_wrong_upstream_key_is_the_auth_error(gw: Gateway, good: EmulatorServer) -> None:
    cid = channel(gw, good.base_url, ["sk-wrong-key"])
    out = probe(gw, cid).json()
    assert out["ok"] is False
    assert out["status"] == 401
    assert out["error"]["code"] == AUTH_FAILED
    assert "credentials" in out["error"]["message"]
    assert "sk-wrong-key" not in str(out)
    assert listed(gw, cid)["status"] == "enabled"  # a test changes nothing


def test_hanging_upstream_is_cut_at_the_test_timeout(gw: Gateway, hanging: EmulatorServer) -> None:
    cid = channel(gw, hanging.base_url, ["sk-any"])
    began = time.monotonic()
    out = probe(gw, cid).json()
    took = time.monotonic() - began
    assert out["ok"] is False
    assert out["error"]["code"] == "upstream_timeout"
    assert out["status"] == 0
    assert TEST_TIMEOUT * 1000 * 0.9 <= out["latency_ms"] < TEST_TIMEOUT * 1000 + 500
    assert took < TEST_TIMEOUT + 1.5


def test_unreachable_port_is_a_connect_error(gw: Gateway) -> None:
    cid = channel(gw, f"http://127.0.0.1:{free_port()}/v1", ["sk-any"])
    out = probe(gw, cid).json()
    assert out["ok"] is False
    assert out["status"] == 0
    assert out["error"]["code"] == "upstream_error"
    assert "connect" in out["error"]["message"].lower()


def test_disabled_channel_can_be_tested(gw: Gateway, good: EmulatorServer) -> None:
    cid = channel(gw, good.base_url, ["sk-good-key"], status="disabled")
    out = probe(gw, cid).json()
    assert out["ok"] is True
    assert listed(gw, cid)["status"] == "disabled"


def test_unknown_channel_and_bad_input(gw: Gateway, good: EmulatorServer) -> None:
    r = probe(gw, 999999)
    assert r.status_code == 404, r.text
    assert r.json()["error"]["param"] == "channel_id"
    cid = channel(gw, good.base_url, ["sk-good-key"])
    r = probe(gw, cid, {"model": 5})
    assert r.status_code == 403 and r.json()["error"]["param"] == "model", r.text
    r = probe(gw, cid, {"modle": "x"})
    assert r.status_code == 403 and r.json()["error"]["param"] == "modle", r.text
    r = httpx.get(
        f"{gw.base}/admin/api/channels/{cid}/test",
        headers={"Authorization": f"Bearer {gw.admin_token}"},
    )
    assert r.status_code == 405 and r.headers["allow"] == "POST"
    r = httpx.post(f"{gw.base}/admin/api/channels/{cid}/test")
    assert r.status_code == 401  # the admin token is required


# ---- rejected keys and auto-disable -------------------------------------------------------
@asynccontextmanager
async def health_on(gw: Gateway, shared: SharedState | None = None) -> AsyncIterator[ChannelHealth]:
    """A ChannelHealth in this process on the gateway's own database (what a worker's
    attempt loop calls), with its catalog loaded."""
    data_dir = Path(gw.env["RELAYGATE_DATA_DIR"])
    engine = create_engine(f"sqlite+aiosqlite:///{(data_dir / 'relaygate.db').resolve()}")
    repo = Repository(engine, Secrets(load_or_create_secret("", data_dir)))
    catalog = Catalog(repo)
    await catalog.load()
    transport = create_transport(Settings())
    await transport.start()
    router = Router(catalog)
    health = ChannelHealth(
        catalog=catalog,
        channels=repo.channels,
        router=router,
        adaptors=AdaptorRegistry(),
        tokens=TokenCache(transport),
        transport=transport,
        shared=shared or InProcessState(),
        test_timeout=5.0,
    )
    try:
        yield health
    finally:
        await health.stop()
        await transport.close()
        await engine.dispose()


def record(health: ChannelHealth, cid: int) -> ChannelRecord:
    return next(c for c in health._catalog.all_channels() if c.id == cid)


def test_rejected_only_key_auto_disables_and_the_scheduler_re_enables(
    gw: Gateway, good: EmulatorServer
) -> None:
    with EmulatorServer("openai", knobs=Knobs(api_key="sk-other-key")) as picky:
        model = "solo-" + uuid.uuid4().hex[:6]
        cid = channel(gw, picky.base_url, ["sk-solo-key"], models=[model])
        off = channel(gw, good.base_url, ["sk-good-key"], status="disabled")
        uid = gw.create_user("health-" + uuid.uuid4().hex[:6], balance=None)
        key = gw.create_key(uid, name="k")
        assert wait_listing(gw, key, model, True)

        async def reject() -> None:
            async with health_on(gw) as health:
                ch = record(health, cid)
                result = await health.test(ch)  # what the attempt loop sees: the auth error
                assert result.error_code == AUTH_FAILED and result.status == 401
                await health.key_rejected(ch, "sk-solo-key", status=401, message="invalid key")
                assert health.is_rejected(cid, "sk-solo-key")
                assert health.usable_keys(ch) == ()
                assert record(health, cid).status == "auto_disabled"  # its catalog reloaded

        asyncio.run(reject())
        shown = listed(gw, cid)
        assert shown["status"] == "auto_disabled"
        assert shown["status_reason"] == "upstream rejected the credentials: HTTP 401: invalid key"
        # out of rotation in the gateway too (its catalog follows the revision)
        assert wait_listing(gw, key, model, False)

        # the scheduler keeps testing it; the key is still refused: it stays off
        picky.stats.reset()
        good.stats.reset()
        assert picky.stats.wait_for(lambda s: s.requests >= 2, timeout=5)
        assert listed(gw, cid)["status"] == "auto_disabled"

        # the upstream takes the key again: the next round enables the channel
        picky.configure(api_key="sk-solo-key")
        shown = wait_status(gw, cid, "enabled", within=5)
        assert shown["status"] == "enabled" and shown["status_reason"] is None
        assert wait_listing(gw, key, model, True)

        # the channel the operator disabled was never tested nor touched
        assert listed(gw, off)["status"] == "disabled"
        assert good.stats.requests == 0


async def test_one_rejected_key_of_two_leaves_rotation_and_the_channel_stays(
    gw: Gateway, good: EmulatorServer
) -> None:
    cid = channel(gw, good.base_url, ["sk-bad-key-1", "sk-good-key"])
    async with health_on(gw) as health:
        ch = record(health, cid)
        assert health.usable_keys(ch) is ch.keys  # nothing rejected: the tuple itself
        result = await health.test(ch, key="sk-bad-key-1")
        assert result.error_code == AUTH_FAILED
        await health.key_rejected(ch, "sk-bad-key-1", status=401)
        assert health.usable_keys(ch) == ("sk-good-key",)
        assert health.is_rejected(cid, "sk-bad-key-1")
        assert not health.is_rejected(cid, "sk-good-key")
        assert record(health, cid).status == "enabled"
        assert (await health.test(ch, key="sk-good-key")).ok
        # rejected again later: still one key left, still enabled
        await health.key_rejected(ch, "sk-bad-key-1", status=401)
        assert health.usable_keys(ch) == ("sk-good-key",)
    assert listed(gw, cid)["status"] == "enabled"


async def test_rejection_expires_after_the_ttl(gw: Gateway, good: EmulatorServer) -> None:
    cid = channel(gw, good.base_url, ["sk-a-key-xx", "sk-good-key"])
    async with health_on(gw) as health:
        health.rejected.ttl = 0.3
        ch = record(health, cid)
        await health.key_rejected(ch, "sk-a-key-xx", status=403)
        assert health.usable_keys(ch) == ("sk-good-key",)
        await asyncio.sleep(0.35)
        assert health.usable_keys(ch) == ch.keys
        assert not health.is_rejected(cid, "sk-a-key-xx")


async def test_rejections_are_shared_by_workers_through_redis(
    gw: Gateway, good: EmulatorServer
) -> None:
    prefix = f"rg-health-{uuid.uuid4().hex[:8]}:"
    cid = channel(gw, good.base_url, ["sk-k1-key-xx", "sk-good-key"])
    one = await RedisState.connect(REDIS_URL, prefix=prefix)
    two = await RedisState.connect(REDIS_URL, prefix=prefix)
    try:
        async with health_on(gw, one) as a, health_on(gw, two) as b:
            await a.key_rejected(record(a, cid), "sk-k1-key-xx", status=401)
            assert not b.is_rejected(cid, "sk-k1-key-xx")  # b has not read it yet
            await b.rejected.sync()
            assert b.is_rejected(cid, "sk-k1-key-xx")
            assert b.usable_keys(record(b, cid)) == ("sk-good-key",)
            raw = await two.get(SHARED_KEY)
            assert raw is not None and b"sk-k1-key-xx" not in raw  # hashed, never the key
            # a reset by one worker puts the key back everywhere
            await a.reset(cid)
            await b.rejected.sync()
            assert not b.is_rejected(cid, "sk-k1-key-xx")
            # b re-publishes its own rejection if a concurrent write lost it
            await b.key_rejected(record(b, cid), "sk-good-key", status=401)
            await two.delete(SHARED_KEY)
            await b.rejected.sync()
            await a.rejected.sync()
            assert a.is_rejected(cid, "sk-good-key")
    finally:
        await one.delete(SHARED_KEY)
        await one.close()
        await two.close()


def test_one_worker_runs_a_round_at_a_time(tmp_path: Path) -> None:
    """Two workers sharing Redis: the auto-disabled channel is tested about once per
    interval, not once per worker and interval."""
    gw2 = Gateway(
        tmp_path,
        {
            "RELAYGATE_CHANNEL_TEST_INTERVAL": str(INTERVAL),
            "RELAYGATE_REDIS_URL": REDIS_URL,
            "RELAYGATE_REDIS_PREFIX": f"rg-health-{uuid.uuid4().hex[:8]}:",
            "RELAYGATE_BILLING": "0",
        },
        workers=2,
    ).start()
    try:
        with EmulatorServer("openai", knobs=Knobs(api_key="sk-other-key")) as picky:
            cid = channel(gw2, picky.base_url, ["sk-solo-key"])

            async def reject() -> None:
                async with health_on(gw2) as health:
                    await health.key_rejected(record(health, cid), "sk-solo-key", status=401)

            asyncio.run(reject())
            assert wait_status(gw2, cid, "auto_disabled", within=5)["status"] == "auto_disabled"
            time.sleep(2 * INTERVAL)  # both workers have the new configuration
            picky.stats.reset()
            time.sleep(3.0)
            rounds = picky.stats.requests
            # one round per interval (6 in 3 s); two workers each running rounds: ~12
            assert 3 <= rounds <= 8, rounds
            assert listed(gw2, cid)["status"] == "auto_disabled"
    finally:
        gw2.stop()
