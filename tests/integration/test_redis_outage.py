"""Redis killed under load and started again (docs/limits.md, "When Redis is away"): a gateway
with two workers on a private redis-server keeps answering while Redis is away, and its limits
still refuse — each worker enforces its share (half, with two workers) of a key's requests per
minute and concurrency; once Redis is back both workers go back to it and the outage's
admissions and tokens are in Redis's windows, and the configuration broadcast resubscribes (a
key revoked afterwards is refused by both workers within a second, with polling at 30 s). No
request fails with a 5xx, and every request has exactly one log row and every answered one
exactly one charge."""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from pathlib import Path
from typing import Any

import httpx
import redis
from gateway import Gateway
from outage_kit import (
    database_fixture,
    logged_and_charged,
    openai_upstream,
    per_worker,
    post_chat,
    route_to,
)
from private_redis import PrivateRedis

PREFIX = "rgo:"
RPM, CONC = 30, 4


database = database_fixture("rg_redis_out_")


class Sent:
    """Every request the test made: its id, status, error message and total tokens."""

    def __init__(self) -> None:
        self.rows: list[tuple[str, int, str, int]] = []

    def chat(self, gw: Gateway, key: str) -> tuple[int, str, int]:
        r = httpx.post(  # a fresh connection: either worker may take it
            gw.base_url + "/chat/completions",
            json={"model": "ro-chat", "messages": [{"role": "user", "content": "hi"}]},
            headers={"Authorization": f"Bearer {key}"},
            timeout=60,
        )
        body: Any = r.json()
        message = body["error"]["message"] if r.status_code >= 400 else ""
        tokens = int(body["usage"]["total_tokens"]) if r.status_code == 200 else 0
        self.rows.append((r.headers["x-request-id"], r.status_code, message, tokens))
        return r.status_code, message, tokens

    def burst(self, gw: Gateway, key: str, n: int) -> list[tuple[int, str, int]]:
        """``n`` requests at once."""
        with concurrent.futures.ThreadPoolExecutor(n) as pool:
            return list(pool.map(lambda _: self.chat(gw, key), range(n)))


def _until(what: str, cond: Any, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while not cond():
        assert time.monotonic() < deadline, f"not reached: {what}"
        time.sleep(0.1)


def test_redis_outage_keeps_serving_with_local_limits(tmp_path: Path, database: str) -> None:
    rds = PrivateRedis().start()
    up = openai_upstream()
    env = {
        "RELAYGATE_DATABASE_URL": database,
        "RELAYGATE_REDIS_URL": rds.url,
        "RELAYGATE_REDIS_PREFIX": PREFIX,
        "RELAYGATE_FIRST_BYTE_TIMEOUT": "10",  # the slow upstream below takes 3 s
        "RELAYGATE_REFRESH_INTERVAL": "30",  # changes travel by the Redis broadcast
    }
    gw = Gateway(tmp_path, env, workers=2).start()
    client = redis.Redis.from_url(rds.url)
    sent = Sent()
    try:
        route_to(gw, up, "ro-chat")
        uid = gw.create_user("outage", balance="100")
        rpm = gw.admin(
            "POST", "/keys", {"user_id": uid, "rpm_limit": RPM, "tpm_limit": 10_000_000}
        )["data"]
        conc = gw.admin("POST", "/keys", {"user_id": uid, "concurrency_limit": CONC})["data"]
        time.sleep(1.2)  # both workers know the keys

        # Redis up: the counts are in Redis
        assert [sent.chat(gw, rpm["key"])[0] for _ in range(5)] == [200] * 5
        assert client.zcard(f"{PREFIX}w:rpm:key:{rpm['id']}") == 5

        rds.kill()
        # away: each worker admits its half of 30 a minute, from an empty local window
        codes = sent.burst(gw, rpm["key"], 16) + sent.burst(gw, rpm["key"], 24)
        ok = [c for c in codes if c[0] == 200]
        refused = [c for c in codes if c[0] == 429]
        assert len(ok) + len(refused) == len(codes), [c[0] for c in codes]  # no 5xx
        assert RPM // 2 <= len(ok) <= RPM, len(ok)
        assert all("requests per minute" in c[1] for c in refused)
        outage_tokens = sum(c[2] for c in ok)
        # concurrency: at most two at once on each worker
        up.configure(latency_ms=3000)  # all twelve arrive while the first are running
        codes_c = sent.burst(gw, conc["key"], 12)
        up.configure(latency_ms=0)
        assert {c[0] for c in codes_c} <= {200, 429}, codes_c
        assert 1 <= sum(c[0] == 200 for c in codes_c) <= CONC
        assert all("concurrent requests" in c[1] for c in codes_c if c[0] == 429)
        logs = gw.logs()
        # one warning per worker for the outage, not one per request
        assert 1 <= logs.count("Redis unavailable: limits are enforced") <= 2

        rds.start()  # empty: a restarted Redis has lost everything
        _until("both workers back on Redis", lambda: gw.logs().count("Redis is back") == 2)
        # the outage's admissions and tokens were added to Redis's windows
        assert client.zcard(f"{PREFIX}w:rpm:key:{rpm['id']}") == len(ok)
        tpm = client.hgetall(f"{PREFIX}s:tpm:key:{rpm['id']}")
        assert sum(int(v) for v in tpm.values()) == outage_tokens > 0
        assert not client.exists(f"{PREFIX}c:conc:key:{conc['id']}")  # every slot given back
        # and the limit is global again: what the outage used is not granted twice
        after = [sent.chat(gw, rpm["key"])[0] for _ in range(RPM - len(ok) + 3)]
        assert after == [200] * (RPM - len(ok)) + [429] * 3, after
        assert client.zcard(f"{PREFIX}w:rpm:key:{rpm['id']}") == RPM
        # the configuration broadcast is back too: a revoked key is refused by both workers
        _until("broadcast resubscribed", lambda: gw.logs().count("broadcast resubscribed") == 2)
        conns = per_worker(gw)
        try:
            start = time.monotonic()
            gw.admin("PATCH", f"/keys/{conc['id']}", {"status": "revoked"})
            for c in conns:
                while post_chat(c, gw, conc["key"], "ro-chat").status_code != 401:
                    assert time.monotonic() - start < 1.0, "the revocation did not travel"
                    time.sleep(0.02)
        finally:
            for c in conns:
                c.close()
        assert "Traceback" not in gw.logs()

        # every request has its log row, every answered one its charge, exactly once
        ids = [r[0] for r in sent.rows]
        answered = {r[0] for r in sent.rows if r[1] == 200}
        logged: dict[str, tuple[int, int]] = {}
        charged: dict[str, tuple[int, int]] = {}

        def complete() -> bool:
            nonlocal logged, charged
            logged, charged = asyncio.run(logged_and_charged(database, ids))
            return len(logged) == len(ids) and set(charged) == answered

        _until("every row written", complete)
        rows = {n for n, _ in logged.values()}
        charges = {n for n, _ in charged.values()}
        assert rows == {1} and charges == {1}, (rows, charges)
    finally:
        client.close()
        gw.stop()
        up.stop()
        rds.kill()


def test_gateway_starts_without_redis_and_joins_it(tmp_path: Path, database: str) -> None:
    """Redis down when the workers start: they serve with local limits, then use Redis as
    soon as it answers (no restart)."""
    rds = PrivateRedis()  # not started
    up = openai_upstream()
    env = {
        "RELAYGATE_DATABASE_URL": database,
        "RELAYGATE_REDIS_URL": rds.url,
        "RELAYGATE_REDIS_PREFIX": PREFIX,
        "RELAYGATE_BILLING": "0",
    }
    gw = Gateway(tmp_path, env).start()
    try:
        assert "unavailable at start-up" in gw.logs()
        route_to(gw, up, "ro-chat", priced=False)
        key = gw.admin("POST", "/keys", {"user_id": gw.create_user("late"), "rpm_limit": 3})["data"]
        sent = Sent()
        # one worker: the local share is the whole limit
        assert [sent.chat(gw, key["key"])[0] for _ in range(4)] == [200, 200, 200, 429]
        rds.start()
        _until("back on Redis", lambda: "Redis is back" in gw.logs())
        client = redis.Redis.from_url(rds.url)
        try:
            assert client.zcard(f"{PREFIX}w:rpm:key:{key['id']}") == 3
            assert sent.chat(gw, key["key"])[0] == 429  # the three count in Redis now
        finally:
            client.close()
    finally:
        gw.stop()
        up.stop()
        rds.kill()
