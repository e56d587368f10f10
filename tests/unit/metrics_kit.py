"""A worker's parts for the metrics unit tests: a real SQLite database with channels made
through the admin service, the real catalog, breakers, channel health and shared state,
gathered in the structural view the metrics read (``metrics/view.py``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from relaygate.catalog import Catalog
from relaygate.providers.registry import AdaptorRegistry
from relaygate.requestlog.writer import UsageLogWriter
from relaygate.routing.breakers import Breakers
from relaygate.routing.health import ChannelHealth
from relaygate.routing.router import Router
from relaygate.routing.tokens import TokenCache
from relaygate.safety.config import SafetyRuntime
from relaygate.services.admin import AdminService
from relaygate.settings import Settings
from relaygate.sharedstate.base import SharedState
from relaygate.sharedstate.memory import InProcessState
from relaygate.storage.crypto import Secrets
from relaygate.storage.db import create_engine, migrate
from relaygate.storage.repo import Repository
from relaygate.transport.factory import create_transport

__all__ = ["View", "channel", "worker"]


@dataclass
class View:
    settings: Settings
    repo: Repository
    catalog: Catalog
    shared: SharedState
    health: ChannelHealth
    breakers: Breakers
    admin: AdminService
    usage_log: UsageLogWriter | None = None
    safety: SafetyRuntime | None = None
    inflight: int = 0
    shed: int = 0
    ready: bool = True
    draining: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def channel(name: str, models: list[str], keys: tuple[str, ...] = ("sk-a",)) -> dict[str, Any]:
    return {
        "name": name,
        "provider": "openai_compat",
        "profile": "openai",
        "base_url": "http://127.0.0.1:9/v1",
        "keys": list(keys),
        "models": models,
    }


@asynccontextmanager
async def worker(
    tmp_path: Path, settings: Settings | None = None, repo: Repository | None = None
) -> AsyncIterator[View]:
    """The parts, on a fresh SQLite database unless ``repo`` is given."""
    s = settings or Settings(data_dir=tmp_path)
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'metrics.db'}")
    await migrate(engine)
    own = Repository(engine, Secrets("metrics-test-secret"))
    catalog = Catalog(own)
    await catalog.load()
    shared: SharedState = InProcessState()
    transport = create_transport(s)
    router = Router(catalog)
    health = ChannelHealth(
        catalog=catalog,
        channels=own.channels,
        router=router,
        adaptors=AdaptorRegistry(),
        tokens=TokenCache(transport),
        transport=transport,
        shared=shared,
    )
    view = View(
        settings=s,
        repo=repo or own,
        catalog=catalog,
        shared=shared,
        health=health,
        breakers=Breakers(shared, s),
        admin=AdminService(own),
    )
    try:
        yield view
    finally:
        await health.stop()
        await view.breakers.stop()
        await engine.dispose()
