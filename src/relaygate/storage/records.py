"""Plain in-memory records: what the hot path reads (never ORM objects)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

__all__ = ["ChannelRecord", "KeyRecord", "UserRecord"]


@dataclass(slots=True, frozen=True)
class UserRecord:
    id: int
    username: str
    role: str
    status: str
    created_at: datetime

    def to_public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "username": self.username,
            "role": self.role,
            "status": self.status,
            "created_at": self.created_at.isoformat(),
        }


@dataclass(slots=True, frozen=True)
class KeyRecord:
    id: int
    user_id: int
    name: str
    kind: str
    key_hash: str
    key_hint: str
    status: str
    expires_at: datetime | None
    models: frozenset[str] | None
    created_at: datetime
    rpm_limit: int | None = None
    concurrency_limit: int | None = None

    def to_public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "user_id": self.user_id,
            "rpm_limit": self.rpm_limit,
            "concurrency_limit": self.concurrency_limit,
            "name": self.name,
            "kind": self.kind,
            "key_hint": self.key_hint,
            "status": self.status,
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
            "models": sorted(self.models) if self.models is not None else None,
            "created_at": self.created_at.isoformat(),
        }


@dataclass(slots=True, frozen=True)
class ChannelRecord:
    id: int
    name: str
    provider: str
    profile: str
    base_url: str
    keys: tuple[str, ...]
    models: tuple[str, ...]
    model_mapping: dict[str, str]
    priority: int
    weight: int
    status: str
    config: dict[str, Any]
    is_emulator: bool
    created_at: datetime

    def to_public(self) -> dict[str, Any]:
        """What the admin API shows: never the upstream keys themselves."""
        return {
            "id": self.id,
            "name": self.name,
            "provider": self.provider,
            "profile": self.profile,
            "base_url": self.base_url,
            "keys": [f"…{k[-4:]}" if len(k) > 8 else "…" for k in self.keys],
            "models": list(self.models),
            "model_mapping": self.model_mapping,
            "priority": self.priority,
            "weight": self.weight,
            "status": self.status,
            "config": self.config,
            "is_emulator": self.is_emulator,
            "created_at": self.created_at.isoformat(),
        }
