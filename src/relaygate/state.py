"""Everything one worker process holds, created in the app lifespan."""

from __future__ import annotations

from dataclasses import dataclass, field

from relaygate.access_log import AccessLog
from relaygate.catalog import Catalog
from relaygate.providers.registry import AdaptorRegistry
from relaygate.requestlog.writer import UsageLogWriter
from relaygate.settings import Settings
from relaygate.stages import FilterChain
from relaygate.storage.crypto import Secrets
from relaygate.storage.repo import Repository
from relaygate.transport.base import Transport

__all__ = ["AppState"]


@dataclass(slots=True)
class AppState:
    settings: Settings
    secrets: Secrets
    repo: Repository
    catalog: Catalog
    transport: Transport
    adaptors: AdaptorRegistry
    filters: FilterChain
    usage_log: UsageLogWriter | None
    access_log: AccessLog | None = None
    inflight: int = 0
    ready: bool = False
    shed: int = field(default=0)
