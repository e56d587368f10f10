"""The gateway on the running PostgreSQL with two worker processes: admin changes made
through one worker reach the other; requests are served by both."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import Upstreams
from gateway import Gateway, fresh_pg_database

PG = os.environ.get("RELAYGATE_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432")


@pytest.fixture(scope="module")
def pg_database() -> Iterator[str]:
    with fresh_pg_database() as url:
        yield url


def test_two_workers_on_postgres(tmp_path: Path, pg_database: str, upstreams: Upstreams) -> None:
    gw = Gateway(tmp_path, {"RELAYGATE_DATABASE_URL": pg_database}, workers=2).start()
    try:
        uid = gw.create_user("pg-user")
        gw.create_channel(
            name="openai",
            provider="openai_compat",
            base_url=upstreams.openai.base_url,
            keys=["sk-up-openai"],
            models=["gpt-4o-mini"],
        )
        key = gw.create_key(uid)
        time.sleep(1.2)  # > 2 × RELAYGATE_REFRESH_INTERVAL: every worker has reloaded
        body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
        pids = set()
        for _ in range(30):  # fresh connections spread over both workers
            with httpx.Client() as c:
                r = c.post(
                    gw.base_url + "/chat/completions",
                    json=body,
                    headers={"Authorization": f"Bearer {key}"},
                )
            assert r.status_code == 200, r.text
        for _ in range(40):
            with httpx.Client() as c:
                pids.add(c.get(gw.base + "/readyz").json()["worker_pid"])
        assert len(pids) == 2, pids
        # revoke through the admin API; every worker stops accepting the key
        kid = gw.admin("GET", f"/keys?user_id={uid}")["data"][0]["id"]
        gw.admin("PATCH", f"/keys/{kid}", {"status": "revoked"})
        time.sleep(1.2)
        for _ in range(10):
            with httpx.Client() as c:
                r = c.post(
                    gw.base_url + "/chat/completions",
                    json=body,
                    headers={"Authorization": f"Bearer {key}"},
                )
            assert r.status_code == 401
        # usage rows reach PostgreSQL from both workers (background writer)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            rows = gw.admin("GET", "/logs?limit=100")["data"]
            if sum(1 for r in rows if r["status"] == 200) >= 30:
                break
            time.sleep(0.2)
        else:
            raise AssertionError("usage rows missing")
    finally:
        gw.stop()
