"""The one typed object that travels through the pipeline."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from relaygate.providers.base import Target, Usage
from relaygate.storage.records import KeyRecord, UserRecord

__all__ = ["RelayContext"]


@dataclass(slots=True)
class RelayContext:
    request_id: str
    endpoint: str  # "chat" | "embeddings" | "models"
    client_ip: str = ""
    started: float = field(default_factory=time.perf_counter)
    key: KeyRecord | None = None
    user: UserRecord | None = None
    model: str | None = None
    stream: bool = False
    include_usage: bool = False
    target: Target | None = None
    usage: Usage | None = None
    status: int = 200
    error_code: str | None = None
    first_byte_at: float | None = None
    client_disconnected: bool = False
    finished: bool = False  # the final response bytes are being sent
    notes: dict[str, Any] = field(default_factory=dict)  # per-request scratch space of filters

    def elapsed_ms(self) -> int:
        return round((time.perf_counter() - self.started) * 1000)

    def ttft_ms(self) -> int | None:
        if self.first_byte_at is None:
            return None
        return round((self.first_byte_at - self.started) * 1000)
