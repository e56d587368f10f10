"""``Repository``: one handle on the database for the rest of relaygate.

It holds one store per table (``users``, ``keys``, ``channels``), the snapshot query the
catalog reloads from, and the request-log table access. Storage only stores: it checks no
field values. Administrative writes go through ``relaygate.services`` (which validates every
field first); the method names below (``create_user``, ``update_channel``, …) delegate to the
stores and are kept for the catalog, the request-log writer and the storage tests.

Every configuration write bumps the ``config`` revision in the same transaction, so every
worker (and node) reloads its in-memory snapshot (see ``relaygate.catalog``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from relaygate.storage import revisions
from relaygate.storage.base import Conflict
from relaygate.storage.channels import ChannelStore
from relaygate.storage.crypto import Secrets
from relaygate.storage.keys import KeyStore
from relaygate.storage.records import ChannelRecord, KeyRecord, UserRecord
from relaygate.storage.request_logs import (
    LOG_COLUMNS,
    LogRow,
    insert_request_logs,
    list_request_logs,
)
from relaygate.storage.snapshot import Snapshot, load_snapshot
from relaygate.storage.users import UserStore

__all__ = ["LOG_COLUMNS", "Conflict", "LogRow", "Repository", "Snapshot"]


class Repository:
    def __init__(self, engine: AsyncEngine, secrets: Secrets) -> None:
        self.engine = engine
        self.secrets = secrets
        self.users = UserStore(engine)
        self.keys = KeyStore(engine, secrets)
        self.channels = ChannelStore(engine, secrets)

    # ---- revision and snapshot (catalog) -----------------------------------
    async def revision(self) -> int:
        async with self.engine.connect() as conn:
            return await revisions.current(conn)

    async def snapshot(self) -> Snapshot:
        return await load_snapshot(self.engine, self.secrets)

    # ---- users ---------------------------------------------------------------
    async def create_user(self, username: str, role: str = "user") -> UserRecord:
        return await self.users.create(username, role)

    async def get_user(
        self, *, user_id: int | None = None, username: str | None = None
    ) -> UserRecord | None:
        return await self.users.get(user_id=user_id, username=username)

    async def list_users(self) -> list[UserRecord]:
        return await self.users.list()

    async def update_user(self, user_id: int, **fields: Any) -> bool:
        return await self.users.update(user_id, fields)

    # ---- keys ----------------------------------------------------------------
    async def create_key(
        self,
        user_id: int,
        *,
        name: str = "",
        kind: str = "api",
        models: Sequence[str] | None = None,
        expires_at: datetime | None = None,
        prefix: str = "sk-",
        rpm_limit: int | None = None,
        concurrency_limit: int | None = None,
    ) -> tuple[KeyRecord, str]:
        return await self.keys.create(
            user_id,
            name=name,
            kind=kind,
            models=models,
            expires_at=expires_at,
            prefix=prefix,
            rpm_limit=rpm_limit,
            concurrency_limit=concurrency_limit,
        )

    async def list_keys(self, user_id: int | None = None) -> list[KeyRecord]:
        return await self.keys.list(user_id)

    async def update_key(self, key_id: int, **fields: Any) -> bool:
        return await self.keys.update(key_id, fields)

    async def delete_key(self, key_id: int) -> bool:
        return await self.keys.delete(key_id)

    # ---- channels --------------------------------------------------------------
    async def create_channel(self, **fields: Any) -> ChannelRecord:
        return await self.channels.create(**fields)

    async def list_channels(self) -> list[ChannelRecord]:
        return await self.channels.list()

    async def update_channel(self, channel_id: int, **fields: Any) -> bool:
        return await self.channels.update(channel_id, fields)

    async def delete_channel(self, channel_id: int) -> bool:
        return await self.channels.delete(channel_id)

    # ---- request logs (storage/request_logs.py) ------------------------------------
    async def insert_request_logs(self, rows: Sequence[LogRow]) -> None:
        await insert_request_logs(self.engine, rows)

    async def list_request_logs(
        self, limit: int = 100, user_id: int | None = None
    ) -> list[dict[str, Any]]:
        return await list_request_logs(self.engine, limit, user_id)
