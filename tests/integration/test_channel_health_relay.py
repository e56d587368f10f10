"""Channel health through the relay (docs/channel-health.md): the attempt loop reports an
upstream key the upstream refuses, the key leaves rotation, a channel with no key left is
auto-disabled while the request fails over, and the scheduler enables it again once the
upstream takes the key."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from gateway import Gateway

from relaygate.emulator import EmulatorServer, Knobs


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    gw = Gateway(
        Path(tmp_path_factory.mktemp("gw-health-relay")),
        {
            "RELAYGATE_CHANNEL_TEST_TIMEOUT": "1",
            "RELAYGATE_CHANNEL_TEST_INTERVAL": "0.5",
            "RELAYGATE_BILLING": "0",
        },
    ).start()
    try:
        yield gw
    finally:
        gw.stop()


def chat(gw: Gateway, key: str, model: str) -> httpx.Response:
    return httpx.post(
        gw.base_url + "/chat/completions",
        json={"model": model, "messages": [{"role": "user", "content": "hi"}]},
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    )


def listed(gw: Gateway, cid: int) -> dict[str, Any]:
    return next(c for c in gw.admin("GET", "/channels")["data"] if c["id"] == cid)


def wait_for(check: Any, within: float = 5.0) -> Any:
    deadline = time.monotonic() + within
    while True:
        out = check()
        if out or time.monotonic() > deadline:
            return out
        time.sleep(0.1)


def sent_keys(emu: EmulatorServer) -> list[str]:
    return [r["headers"].get("Authorization", "") for r in emu.stats.snapshot()["recorded"]]


def test_refused_only_key_fails_over_auto_disables_and_comes_back(gw: Gateway) -> None:
    model = "relay-" + uuid.uuid4().hex[:6]
    with (
        EmulatorServer("openai", knobs=Knobs(api_key="sk-other-key")) as picky,
        EmulatorServer("openai", knobs=Knobs(api_key="sk-backup-key")) as backup,
    ):
        first = gw.create_channel(
            name="first",
            base_url=picky.base_url,
            keys=["sk-first-key"],
            models=[model],
            priority=10,
        )
        gw.create_channel(
            name="backup", base_url=backup.base_url, keys=["sk-backup-key"], models=[model]
        )
        uid = gw.create_user("relay-" + uuid.uuid4().hex[:6], balance=None)
        key = gw.create_key(uid, name="k")

        r = chat(gw, key, model)
        assert r.status_code == 200, r.text  # failed over to the backup
        assert picky.stats.requests == 1 and backup.stats.requests == 1
        shown = wait_for(lambda: (c := listed(gw, first))["status"] == "auto_disabled" and c)
        assert shown, listed(gw, first)
        assert shown["status_reason"].startswith("upstream rejected the credentials: HTTP 401")

        # off rotation: requests go straight to the backup
        picky.stats.reset()
        for _ in range(3):
            assert chat(gw, key, model).status_code == 200
        time.sleep(0.2)
        # the only requests the refusing upstream still gets are the scheduler's tests
        assert all(r["body"].get("max_tokens") == 1 for r in picky.stats.snapshot()["recorded"])

        picky.configure(api_key="sk-first-key")
        assert wait_for(lambda: listed(gw, first)["status"] == "enabled")
        assert listed(gw, first)["status_reason"] is None

        # back in rotation (highest priority): it serves again
        def served_by_first() -> bool:
            before = picky.stats.requests
            return chat(gw, key, model).status_code == 200 and picky.stats.requests > before

        assert wait_for(served_by_first)


def test_one_refused_key_of_two_leaves_rotation(gw: Gateway) -> None:
    model = "two-" + uuid.uuid4().hex[:6]
    with EmulatorServer("openai", knobs=Knobs(api_key="sk-good-key")) as emu:
        cid = gw.create_channel(
            name="two", base_url=emu.base_url, keys=["sk-bad-key-1", "sk-good-key"], models=[model]
        )
        uid = gw.create_user("two-" + uuid.uuid4().hex[:6], balance=None)
        key = gw.create_key(uid, name="k")
        codes = [chat(gw, key, model).status_code for _ in range(6)]
        # at most the first request met the bad key (one channel: nothing to fail over to)
        assert codes.count(200) >= 5, codes
        time.sleep(0.2)
        emu.stats.reset()
        codes = [chat(gw, key, model).status_code for _ in range(6)]
        assert codes == [200] * 6
        assert set(sent_keys(emu)) == {"Bearer sk-good-key"}
        assert listed(gw, cid)["status"] == "enabled"
