"""Object creation while PostgreSQL refuses connections: the upstream made the object but
the gateway cannot record its owner and channel, so it removes (or cancels) it upstream and
answers a clear 503 — nothing is left that its owner could never reach. Once the database is
back, creation works and is recorded."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from gateway import PG, Gateway, fresh_pg_database, pg_admin

from relaygate.emulator import EmulatorServer, Knobs


@pytest.fixture()
def database() -> Iterator[str]:
    with fresh_pg_database("rg_objout_") as url:
        yield url.rsplit("/", 1)[1]


def _block(name: str) -> None:
    pg_admin(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
    pg_admin(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'")


def _unblock(name: str) -> None:
    pg_admin(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')


def test_an_unrecordable_object_is_removed_upstream(tmp_path: Path, database: str) -> None:
    up = EmulatorServer("openai", knobs=Knobs(api_key="sk-up", job_seconds=30)).start()
    gw = Gateway(
        tmp_path,
        {"RELAYGATE_DATABASE_URL": f"{PG}/{database}", "RELAYGATE_REFRESH_INTERVAL": "60"},
    ).start()
    try:
        gw.create_channel(name="up", provider="openai_compat", profile="openai",
                          base_url=up.base_url, keys=["sk-up"], models=["ft-base"])  # fmt: skip
        uid = gw.create_user("owner", balance="10")
        key = gw.create_key(uid)
        client = openai.OpenAI(api_key=key, base_url=gw.base_url, max_retries=0)
        train = "\n".join(
            json.dumps({"messages": [{"role": "user", "content": "q"}]}) for _ in "ab"
        )
        kept = client.files.create(file=("t.jsonl", train.encode(), "application/jsonl"),
                                   purpose="fine-tune")  # fmt: skip
        time.sleep(0.5)
        _block(database)
        try:
            with pytest.raises(openai.APIStatusError) as exc:
                client.files.create(file=("x.txt", b"lost?", "text/plain"), purpose="user_data")
            assert exc.value.status_code == 503
            assert "removed upstream" in exc.value.body["message"]  # type: ignore[index]
            paths = [(r["method"], r["path"]) for r in up.stats.snapshot()["recorded"]]
            created = [p for p in paths if p == ("POST", "/v1/files")]
            removed = [p for p in paths if p[0] == "DELETE" and p[1].startswith("/v1/files/")]
            assert len(created) == 2 and len(removed) == 1
            listed = httpx.get(up.base_url + "/files",
                               headers={"Authorization": "Bearer sk-up"}).json()  # fmt: skip
            assert [f["id"] for f in listed["data"]] == [kept.id]  # nothing orphaned upstream
        finally:
            _unblock(database)
        deadline = time.monotonic() + 15
        while True:  # the pool reconnects
            try:
                again = client.files.create(file=("y.txt", b"back", "text/plain"),
                                            purpose="user_data")  # fmt: skip
                break
            except openai.APIStatusError:
                assert time.monotonic() < deadline
                time.sleep(0.5)
        assert {f.id for f in client.files.list()} == {kept.id, again.id}
    finally:
        gw.stop()
        up.stop()
