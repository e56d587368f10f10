"""What the metrics and the readiness report read of a worker: a structural view of
``state.py`` ``AppState`` (this package sits below it and never imports it)."""

from __future__ import annotations

from typing import Protocol

from relaygate.catalog import Catalog
from relaygate.requestlog.writer import UsageLogWriter
from relaygate.routing.breakers import Breakers
from relaygate.routing.health import ChannelHealth
from relaygate.safety.config import SafetyRuntime
from relaygate.settings import Settings
from relaygate.sharedstate.base import SharedState
from relaygate.storage.repo import Repository

__all__ = ["WorkerView"]


class WorkerView(Protocol):
    @property
    def settings(self) -> Settings: ...
    @property
    def repo(self) -> Repository: ...
    @property
    def catalog(self) -> Catalog: ...
    @property
    def shared(self) -> SharedState: ...
    @property
    def usage_log(self) -> UsageLogWriter | None: ...
    @property
    def safety(self) -> SafetyRuntime | None: ...
    @property
    def health(self) -> ChannelHealth: ...
    @property
    def breakers(self) -> Breakers: ...
    @property
    def inflight(self) -> int: ...
    @property
    def shed(self) -> int: ...
    @property
    def ready(self) -> bool: ...
    @property
    def draining(self) -> bool: ...
