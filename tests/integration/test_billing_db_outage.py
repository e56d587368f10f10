"""Billing while PostgreSQL refuses connections: a request that needs a new budget lease
gets a clear 503 (never a 500, nothing half-held); a user whose worker already holds a
lease keeps being served, and the charges made during the outage are committed once the
database is back — nothing is lost, nothing doubled."""

from __future__ import annotations

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
    """The name of a fresh database (dropped afterwards, re-opened first if blocked)."""
    with fresh_pg_database("rg_outage_") as url:
        yield url.rsplit("/", 1)[1]


def _block(name: str) -> None:
    pg_admin(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
    pg_admin(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'")


def _unblock(name: str) -> None:
    pg_admin(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')


def test_reservations_during_a_database_outage(tmp_path: Path, database: str) -> None:
    up = EmulatorServer("openai", knobs=Knobs(api_key="sk-up"))
    up.start()
    gw = Gateway(
        tmp_path,
        {"RELAYGATE_DATABASE_URL": f"{PG}/{database}", "RELAYGATE_REFRESH_INTERVAL": "60"},
    ).start()
    try:
        gw.create_channel(
            name="up",
            provider="openai_compat",
            profile="openai",
            base_url=up.base_url,
            keys=["sk-up"],
            models=["out-chat"],
        )
        gw.admin(
            "POST",
            "/prices",
            {"model": "out-chat", "input": "2", "output": "8", "per": "1m", "force": True},
        )
        warm_uid = gw.create_user("warm", balance="100")
        warm = openai.OpenAI(api_key=gw.create_key(warm_uid), base_url=gw.base_url, max_retries=0)
        cold_uid = gw.create_user("cold", balance="100")
        cold_key = gw.create_key(cold_uid)
        warm.chat.completions.create(  # this worker now holds a lease on warm's balance
            model="out-chat", messages=[{"role": "user", "content": "hi"}], max_tokens=20
        )
        time.sleep(1.0)
        start = gw.balance(warm_uid)["balance_units"]

        _block(database)
        try:
            # a user whose balance this worker has no lease on: a clear 503, no upstream call
            r = httpx.post(
                gw.base_url + "/chat/completions",
                json={"model": "out-chat", "messages": [{"role": "user", "content": "hi"}]},
                headers={"Authorization": f"Bearer {cold_key}"},
                timeout=30,
            )
            assert r.status_code == 503, r.text
            err = r.json()["error"]
            assert err["code"] == "service_unavailable" and "Billing" in err["message"]
            # a user with a lease keeps going; the charges wait in the spool
            used = 0
            for _ in range(3):
                c = warm.chat.completions.create(
                    model="out-chat", messages=[{"role": "user", "content": "x"}], max_tokens=20
                )
                assert c.usage is not None
                used += 2 * c.usage.prompt_tokens + 8 * c.usage.completion_tokens
        finally:
            _unblock(database)

        deadline = time.monotonic() + 20  # the writer retries with back-off
        while time.monotonic() < deadline:
            try:
                bal = gw.balance(warm_uid)
            except AssertionError:  # the admin API itself may fail while reconnecting
                time.sleep(0.3)
                continue
            if bal["balance_units"] == start - used:
                break
            time.sleep(0.3)
        assert gw.balance(warm_uid)["balance_units"] == start - used
        charges = [
            e
            for e in gw.admin("GET", f"/users/{warm_uid}/ledger?limit=100")["data"]
            if e["kind"] == "charge"
        ]
        assert len(charges) == 4  # the warm-up and the three during the outage, once each
        # the refused user holds nothing and is charged nothing
        cold = gw.balance(cold_uid)
        assert cold["balance_units"] == 100_000_000
        r = httpx.post(
            gw.base_url + "/chat/completions",
            json={"model": "out-chat", "messages": [{"role": "user", "content": "hi"}]},
            headers={"Authorization": f"Bearer {cold_key}"},
            timeout=30,
        )
        assert r.status_code == 200, r.text
    finally:
        gw.stop()
        up.stop()
