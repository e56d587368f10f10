"""An admin change on one node is live on another within a second (docs/architecture.md,
"Configuration snapshot"): two gateways with their own data directories share one PostgreSQL
database and one Redis (a prefix of their own), and poll for changes only every 30 s — so only
the Redis broadcast can explain node B following node A in well under a second. Node B runs
two workers and each is checked on its own keep-alive connection.

Each change is timed from just before node A's admin call to the moment every worker of
node B answers accordingly: a revoked key is refused, a disabled channel no longer serves its
model, a new price makes a model unaffordable to a user without money, a package granted to
that user makes it usable again (the workers' package lists are cached for seconds), a new
word in a safety list blocks a prompt."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from conftest import Upstreams
from gateway import Gateway
from outage_kit import database_fixture, per_worker, post_chat

REDIS_URL = os.environ.get("RELAYGATE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
#: the bound the issue sets; the measured figures are printed (pytest -s) and far below it
WITHIN = 1.0

database = database_fixture("rg_bcast_")


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    prefix = f"rgtest:{uuid.uuid4().hex[:12]}:"
    yield prefix
    client = redis.Redis.from_url(REDIS_URL)
    try:
        keys = list(client.scan_iter(match=prefix + "*"))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def chat(gw: Gateway, c: httpx.Client, key: str, model: str, text: str = "hello") -> int:
    return post_chat(c, gw, key, model, text, max_tokens=8).status_code


def seen_after(
    clients: list[httpx.Client], change: Callable[[], object], shows: Callable[[httpx.Client], bool]
) -> float:
    """Seconds from just before ``change()`` until ``shows`` holds on every connection
    (each checked until it holds, then left alone); fails after 10 s."""
    start = time.monotonic()
    change()
    pending = list(clients)
    while pending:
        pending = [c for c in pending if not shows(c)]
        if pending:
            assert time.monotonic() - start < 10, "node B never followed the change"
            time.sleep(0.01)
    return time.monotonic() - start


def test_admin_changes_reach_the_other_node_within_a_second(
    tmp_path: Path, upstreams: Upstreams, redis_prefix: str, database: str
) -> None:
    env = {
        "RELAYGATE_DATABASE_URL": database,
        "RELAYGATE_SECRET_KEY": "broadcast-test-secret",
        "RELAYGATE_REDIS_URL": REDIS_URL,
        "RELAYGATE_REDIS_PREFIX": redis_prefix,
        "RELAYGATE_REFRESH_INTERVAL": "30",
    }
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = Gateway(tmp_path / "a", env).start()
    b = Gateway(tmp_path / "b", env, workers=2).start()
    workers = per_worker(b, timeout=30)
    try:
        for name, model in (("bc-main", "bc-chat"), ("bc-side", "bc-other")):
            a.create_channel(
                name=name,
                provider="openai_compat",
                profile="openai",
                base_url=upstreams.openai.base_url,
                keys=["sk-up-openai"],
                models=[model],
            )
        uid = a.create_user("bc-user", balance=None)  # no money: only free models
        key = a.create_key(uid)
        # everything was made on node A; node B's workers warm up with it (not timed)
        seen_after(workers, lambda: None, lambda c: chat(b, c, key, "bc-chat") == 200)
        times: dict[str, float] = {}
        doomed: dict[str, Any] = {}
        times["new key"] = seen_after(
            workers,
            lambda: doomed.update(a.admin("POST", "/keys", {"user_id": uid})["data"]),
            lambda c: chat(b, c, doomed["key"], "bc-chat") == 200,
        )
        times["revoked key"] = seen_after(
            workers,
            lambda: a.admin("PATCH", f"/keys/{doomed['id']}", {"status": "revoked"}),
            lambda c: chat(b, c, doomed["key"], "bc-chat") == 401,
        )
        assert all(chat(b, c, key, "bc-other") == 200 for c in workers)
        side = [ch for ch in a.admin("GET", "/channels")["data"] if ch["name"] == "bc-side"]
        times["disabled channel"] = seen_after(
            workers,
            lambda: a.admin("PATCH", f"/channels/{side[0]['id']}", {"status": "disabled"}),
            lambda c: chat(b, c, key, "bc-other") != 200,
        )
        assert all(chat(b, c, key, "bc-chat") == 200 for c in workers)  # unpriced: free
        price = {"model": "bc-chat", "input": "2", "output": "8", "per": "1m", "force": True}
        times["new price"] = seen_after(
            workers,
            lambda: a.admin("POST", "/prices", price),
            lambda c: chat(b, c, key, "bc-chat") == 403,  # insufficient_quota
        )
        plan = a.admin("POST", "/plans", {"name": "bc-unl", "kind": "unlimited"})["data"]
        times["granted package"] = seen_after(  # the user without money may now use it
            workers,
            lambda: a.admin("POST", f"/users/{uid}/packages", {"plan_id": plan["id"]}),
            lambda c: chat(b, c, key, "bc-chat") == 200,
        )
        rich = a.create_key(a.create_user("bc-rich", balance="100"))

        def add_word() -> None:
            r = httpx.post(
                a.base + "/admin/api/safety/lists",
                json={"name": "bc-words", "words": ["wombat"]},
                headers={"Authorization": f"Bearer {a.admin_token}"},
                timeout=30,
            )
            assert r.status_code == 201, r.text

        assert all(chat(b, c, rich, "bc-chat", "a wombat") == 200 for c in workers)
        times["safety word"] = seen_after(
            workers, add_word, lambda c: chat(b, c, rich, "bc-chat", "a wombat") == 402
        )
        print("seen on node B after:", {k: f"{v * 1000:.0f} ms" for k, v in times.items()})
        assert all(v < WITHIN for v in times.values()), times
        logs = b.logs()
        assert '"by":"broadcast"' in logs and '"by":"poll"' not in logs
    finally:
        for c in workers:
            c.close()
        b.stop()
        a.stop()
