"""Settings an admin changed at runtime (``runtime_settings``, migration ``0014``): one row per
overridden setting, its value as JSON, when and by whom. A setting without a row keeps its
environment value (``RELAYGATE_*``, the default). Written by ``PATCH /admin/api/settings``
(``api/admin_settings.py``) in one transaction with the ``config`` revision bump, so every
worker re-applies the overrides when its catalog reloads (``services/runtime_settings.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, DateTime, String, Table, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from relaygate.storage.base import aware, now
from relaygate.storage.revisions import bump
from relaygate.storage.tables import metadata

__all__ = ["Override", "RuntimeSettingsStore", "runtime_settings"]

runtime_settings = Table(
    "runtime_settings",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", JSON, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("updated_by", String(64), nullable=False, default="", server_default=""),
)


@dataclass(frozen=True, slots=True)
class Override:
    value: Any
    updated_at: datetime | None
    updated_by: str


class RuntimeSettingsStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def all(self) -> dict[str, Override]:
        async with self.engine.connect() as conn:
            rows = (await conn.execute(select(runtime_settings))).mappings().all()
        return {
            str(r["key"]): Override(r["value"], aware(r["updated_at"]), str(r["updated_by"]))
            for r in rows
        }

    async def change(self, changes: Mapping[str, Any], by: str) -> None:
        """Set every key of ``changes`` to its value (``None``: delete the row, back to the
        default) and bump the ``config`` revision, all in one transaction."""
        at = now()
        key_col = runtime_settings.c.key
        async with self.engine.begin() as conn:
            for key, value in changes.items():
                if value is None:
                    await conn.execute(delete(runtime_settings).where(key_col == key))
                    continue
                done = await conn.execute(
                    update(runtime_settings)
                    .where(key_col == key)
                    .values(value=value, updated_at=at, updated_by=by)
                )
                if not done.rowcount:
                    await conn.execute(
                        insert(runtime_settings).values(
                            key=key, value=value, updated_at=at, updated_by=by
                        )
                    )
            await bump(conn)
