"""Integration fixtures: real emulated upstreams (threads) and a real gateway process."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from gateway import Gateway
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from relaygate.emulator import EmulatorServer, Knobs
from relaygate.storage.crypto import Secrets
from relaygate.storage.db import create_engine, migrate
from relaygate.storage.repo import Repository


@dataclass
class Upstreams:
    openai: EmulatorServer
    deepseek: EmulatorServer
    azure: EmulatorServer
    anthropic: EmulatorServer

    def reset(self) -> None:
        for srv in (self.openai, self.deepseek, self.azure, self.anthropic):
            srv.reset(knobs=True, stats=False)


@pytest.fixture(scope="session")
def upstreams() -> Iterator[Upstreams]:
    servers = {
        "openai": EmulatorServer("openai", knobs=Knobs(api_key="sk-up-openai")),
        "deepseek": EmulatorServer("deepseek", knobs=Knobs(api_key="sk-up-deepseek")),
        "azure": EmulatorServer("azure", knobs=Knobs(api_key="az-up-key")),
        "anthropic": EmulatorServer("anthropic", knobs=Knobs(api_key="sk-ant-up")),
    }
    for s in servers.values():
        s.start()
    try:
        yield Upstreams(**servers)
    finally:
        for s in servers.values():
            s.stop()


@dataclass
class Env:
    gw: Gateway
    up: Upstreams
    key: str  # a key that may use every model
    user_id: int


def _seed(gw: Gateway, up: Upstreams) -> Env:
    uid = gw.create_user("alice")
    gw.create_channel(
        name="openai",
        provider="openai_compat",
        profile="openai",
        base_url=up.openai.base_url,
        keys=["sk-up-openai"],
        models=["gpt-4o-mini", "text-embedding-3-small", "error-500", "hang"],
        model_mapping={"gpt-4o-mini": "gpt-4o-mini-2024-07-18"},
    )
    gw.create_channel(
        name="deepseek",
        provider="openai_compat",
        profile="deepseek",
        base_url=up.deepseek.base_url,
        keys=["sk-up-deepseek"],
        models=["deepseek-chat", "deepseek-reasoner"],
    )
    gw.create_channel(
        name="azure",
        provider="openai_compat",
        profile="azure",
        base_url=up.azure.base_url,
        keys=["az-up-key"],
        models=["azure-gpt-4o", "azure-embed"],
        config={
            "api_version": "2024-10-21",
            "deployments": {"azure-gpt-4o": "gpt4o-prod", "azure-embed": "embed-prod"},
        },
    )
    gw.create_channel(
        name="anthropic",
        provider="anthropic",
        base_url=up.anthropic.base_url,
        keys=["sk-ant-up"],
        models=["claude-sonnet-4"],
        model_mapping={"claude-sonnet-4": "claude-sonnet-4-20250514"},
    )
    key = gw.create_key(uid, name="all")
    return Env(gw, up, key, uid)


@pytest.fixture(scope="session")
def env(tmp_path_factory: pytest.TempPathFactory, upstreams: Upstreams) -> Iterator[Env]:
    gw = Gateway(Path(tmp_path_factory.mktemp("gw"))).start()
    try:
        yield _seed(gw, upstreams)
    finally:
        gw.stop()


@pytest.fixture(scope="session")
def strict_env(tmp_path_factory: pytest.TempPathFactory, upstreams: Upstreams) -> Iterator[Env]:
    """A second gateway: OpenAI's own statuses, envelope off, tiny in-flight bound,
    content logging on."""
    gw = Gateway(
        Path(tmp_path_factory.mktemp("gw-strict")),
        {
            "RELAYGATE_OPENAI_STATUS_CODES": "1",
            "RELAYGATE_ENVELOPE": "0",
            "RELAYGATE_MAX_INFLIGHT": "2",
            "RELAYGATE_LOG_CONTENT": "1",
        },
    ).start()
    try:
        yield _seed(gw, upstreams)
    finally:
        gw.stop()


@pytest.fixture(autouse=True)
def _reset_upstreams(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "upstreams" in request.fixturenames or "env" in request.fixturenames:
        request.getfixturevalue("upstreams").reset()


# ---- storage: the same tests on SQLite and on the running PostgreSQL -------------
PG_URL = os.environ.get(
    "RELAYGATE_TEST_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)


@pytest.fixture(params=["sqlite", "postgres"])
async def repo(  # a fresh database: SQLite file, or a PostgreSQL schema
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[Repository]:
    if request.param == "sqlite":
        engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'rg.db'}")
        await migrate(engine)
        yield Repository(engine, Secrets("test-secret"))
        await engine.dispose()
        return
    schema = "rg_" + uuid.uuid4().hex[:10]
    admin = create_engine(PG_URL)
    try:
        async with admin.begin() as conn:
            await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    except OSError as exc:  # pragma: no cover - PostgreSQL is a CI service
        await admin.dispose()
        pytest.fail(f"PostgreSQL at {PG_URL} is not reachable: {exc}")
    engine = create_async_engine(PG_URL, connect_args={"server_settings": {"search_path": schema}})
    await migrate(engine)
    try:
        yield Repository(engine, Secrets("test-secret"))
    finally:
        await engine.dispose()
        async with admin.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        await admin.dispose()
