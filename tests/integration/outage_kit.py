"""Shared set-up of the outage and broadcast tests (test_pg_outage.py, test_redis_outage.py,
test_config_broadcast.py): a fresh PostgreSQL database per test, the OpenAI emulator as the
upstream of one priced channel, one keep-alive connection on each worker of a gateway, a chat
request on such a connection, and the log rows and charges the requests left."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import asyncpg
import httpx
import pytest
from gateway import Gateway, fresh_pg_database

from relaygate.emulator import EmulatorServer, Knobs

__all__ = [
    "database_fixture",
    "logged_and_charged",
    "openai_upstream",
    "per_worker",
    "post_chat",
    "route_to",
]

UP_KEY = "sk-up"


def database_fixture(prefix: str) -> Callable[..., Any]:
    """A ``database`` fixture: a new PostgreSQL database per test, named ``prefix…``, dropped
    afterwards (``database = database_fixture("rg_x_")`` in the test module)."""

    @pytest.fixture
    def database() -> Iterator[str]:
        with fresh_pg_database(prefix) as url:
            yield url

    return database


def openai_upstream() -> EmulatorServer:
    """The OpenAI emulator, started, taking the key ``sk-up``."""
    up = EmulatorServer("openai", knobs=Knobs(api_key=UP_KEY))
    up.start()
    return up


def route_to(gw: Gateway, up: EmulatorServer, model: str, priced: bool = True) -> None:
    """A channel ``up`` on ``gw`` serving ``model`` from ``up``; priced 2 / 8 per 1M tokens
    (input / output) unless ``priced`` is false."""
    gw.create_channel(
        name="up",
        provider="openai_compat",
        profile="openai",
        base_url=up.base_url,
        keys=[UP_KEY],
        models=[model],
    )
    if priced:
        gw.admin(
            "POST",
            "/prices",
            {"model": model, "input": "2", "output": "8", "per": "1m", "force": True},
        )


def per_worker(gw: Gateway, timeout: float = 60) -> list[httpx.Client]:
    """One keep-alive connection on each of the gateway's workers (``/readyz`` says which)."""
    chosen: dict[int, httpx.Client] = {}
    for _ in range(200):
        c = httpx.Client(timeout=timeout)
        pid = int(c.get(gw.base + "/readyz").json()["worker_pid"])
        if pid in chosen:
            c.close()
        else:
            chosen[pid] = c
        if len(chosen) == gw.workers:
            return list(chosen.values())
    raise AssertionError(f"found {len(chosen)} of {gw.workers} workers")


def post_chat(
    c: httpx.Client, gw: Gateway, key: str, model: str, text: str = "hi", **extra: Any
) -> httpx.Response:
    """A one-turn chat completion on the connection ``c`` (``extra``: more body fields)."""
    return c.post(
        gw.base_url + "/chat/completions",
        json={"model": model, "messages": [{"role": "user", "content": text}], **extra},
        headers={"Authorization": f"Bearer {key}"},
    )


async def logged_and_charged(
    url: str, ids: list[str]
) -> tuple[dict[str, tuple[int, int]], dict[str, tuple[int, int]]]:
    """Per request id: (log rows, their cost) and (charges, the amount charged)."""
    conn = await asyncpg.connect(url)
    try:
        logs = await conn.fetch(
            "SELECT request_id, count(*) AS n, coalesce(sum(cost), 0) AS cost "
            "FROM request_logs WHERE request_id = ANY($1) GROUP BY request_id",
            ids,
        )
        charges = await conn.fetch(
            "SELECT request_id, count(*) AS n, coalesce(sum(amount), 0) AS amount FROM ledger "
            "WHERE kind = 'charge' AND request_id = ANY($1) GROUP BY request_id",
            ids,
        )
    finally:
        await conn.close()
    return (
        {r["request_id"]: (r["n"], int(r["cost"])) for r in logs},
        {r["request_id"]: (r["n"], int(r["amount"])) for r in charges},
    )
