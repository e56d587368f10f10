"""Everything one worker process holds, created in the app lifespan."""

from __future__ import annotations

from dataclasses import dataclass, field

from relaygate.access_log import AccessLog
from relaygate.billing.prices import PriceTable
from relaygate.catalog import Catalog
from relaygate.metrics import Metrics
from relaygate.online.stage import OnlineStage
from relaygate.providers.registry import AdaptorRegistry
from relaygate.requestlog.writer import UsageLogWriter
from relaygate.routing.breakers import Breakers
from relaygate.routing.health import ChannelHealth
from relaygate.routing.router import Router
from relaygate.routing.slots import Slots
from relaygate.routing.tokens import TokenCache
from relaygate.safety.config import SafetyRuntime
from relaygate.settings import Settings
from relaygate.sharedstate.base import SharedState
from relaygate.stages import BillingStage, FilterChain
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
    router: Router
    tokens: TokenCache
    shared: SharedState
    filters: FilterChain
    billing: BillingStage
    usage_log: UsageLogWriter | None
    # rejected upstream keys, auto-disable, channel tests (routing/health.py)
    health: ChannelHealth
    # circuit breakers and concurrency caps (routing/breakers.py, routing/slots.py)
    breakers: Breakers
    slots: Slots
    access_log: AccessLog | None = None
    # model prices and group multipliers (billing/prices.py); reloaded in place
    prices: PriceTable = field(default_factory=PriceTable.build)
    # online web search (online/stage.py); None only in states built without it
    online: OnlineStage | None = None
    # content safety (safety/config.py): lists, audit, screen(); None when RELAYGATE_SAFETY=0
    safety: SafetyRuntime | None = None
    # Prometheus metrics and the readiness report (metrics/); None only before start-up ends
    metrics: Metrics | None = None
    inflight: int = 0
    ready: bool = False
    draining: bool = False  # shutting down: finishing open requests
    shed: int = field(default=0)
