"""The ``channels`` table: upstream keys are encrypted at rest (Fernet).

Stores what it is given: values are validated by ``relaygate.services``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from relaygate.storage import revisions
from relaygate.storage.base import aware, columns, now
from relaygate.storage.crypto import Secrets
from relaygate.storage.records import ChannelRecord
from relaygate.storage.tables import channels

__all__ = ["ChannelStore", "channel_from_row"]

WRITABLE = (
    "name",
    "profile",
    "base_url",
    "keys",
    "models",
    "model_mapping",
    "priority",
    "weight",
    "status",
    "config",
)


def channel_from_row(r: Any, secrets: Secrets) -> ChannelRecord:
    return ChannelRecord(
        id=int(r["id"]),
        name=r["name"],
        provider=r["provider"],
        profile=r["profile"],
        base_url=r["base_url"],
        keys=tuple(secrets.decrypt_keys(r["keys_encrypted"])),
        models=tuple(r["models"] or ()),
        model_mapping=dict(r["model_mapping"] or {}),
        priority=int(r["priority"]),
        weight=int(r["weight"]),
        status=r["status"],
        config=dict(r["config"] or {}),
        is_emulator=bool(r["is_emulator"]),
        created_at=aware(r["created_at"]) or now(),
        status_reason=r.get("status_reason"),
    )


class ChannelStore:
    def __init__(self, engine: AsyncEngine, secrets: Secrets) -> None:
        self.engine = engine
        self.secrets = secrets

    async def create(
        self,
        *,
        name: str,
        provider: str,
        base_url: str,
        keys: Sequence[str],
        models: Sequence[str],
        profile: str = "openai",
        model_mapping: Mapping[str, str] | None = None,
        priority: int = 0,
        weight: int = 1,
        config: Mapping[str, Any] | None = None,
        status: str = "enabled",
        is_emulator: bool = False,
    ) -> ChannelRecord:
        values = {
            "name": name,
            "provider": provider,
            "profile": profile,
            "base_url": base_url.rstrip("/"),
            "keys_encrypted": self.secrets.encrypt_keys(list(keys)),
            "models": list(models),
            "model_mapping": dict(model_mapping or {}),
            "priority": priority,
            "weight": weight,
            "status": status,
            "config": dict(config or {}),
            "is_emulator": is_emulator,
            "created_at": now(),
        }
        async with self.engine.begin() as conn:
            res = await conn.execute(insert(channels).values(**values))
            await revisions.bump(conn)
        cid = int(res.inserted_primary_key[0])  # type: ignore[index]
        return channel_from_row({"id": cid, **values}, self.secrets)

    async def get(self, channel_id: int) -> ChannelRecord | None:
        async with self.engine.connect() as conn:
            row = (
                (await conn.execute(select(channels).where(channels.c.id == channel_id)))
                .mappings()
                .first()
            )
        return channel_from_row(row, self.secrets) if row else None

    async def list(self) -> list[ChannelRecord]:
        async with self.engine.connect() as conn:
            rows = (await conn.execute(select(channels).order_by(channels.c.id))).mappings().all()
        return [channel_from_row(r, self.secrets) for r in rows]

    async def update(self, channel_id: int, fields: Mapping[str, Any]) -> bool:
        """Write ``fields`` (``keys`` replaces every upstream key). False if no such channel.

        This is the operator's path: a ``status`` written here clears ``status_reason``
        (the reason is the gateway's, see :meth:`set_status`)."""
        values = columns(fields, WRITABLE)
        if "status" in values:
            values["status_reason"] = None
        if "keys" in values:
            values["keys_encrypted"] = self.secrets.encrypt_keys(list(values.pop("keys")))
        if "base_url" in values:
            values["base_url"] = str(values["base_url"]).rstrip("/")
        if not values:
            return False
        async with self.engine.begin() as conn:
            res = await conn.execute(
                update(channels).where(channels.c.id == channel_id).values(**values)
            )
            if res.rowcount:
                await revisions.bump(conn)
        return bool(res.rowcount)

    async def set_status(
        self, channel_id: int, status: str, reason: str | None
    ) -> ChannelRecord | None:
        """The gateway's own status change (auto-disable, re-enable after a passing test):
        ``status`` and why (cut to 256 characters), with a revision bump so every worker
        reloads. Returns the channel as written, or None if there is no such channel."""
        if reason is not None:
            reason = reason[:256]
        async with self.engine.begin() as conn:
            res = await conn.execute(
                update(channels)
                .where(channels.c.id == channel_id)
                .values(status=status, status_reason=reason)
            )
            if not res.rowcount:
                return None
            await revisions.bump(conn)
            row = (
                (await conn.execute(select(channels).where(channels.c.id == channel_id)))
                .mappings()
                .first()
            )
        return channel_from_row(row, self.secrets) if row else None

    async def delete(self, channel_id: int) -> bool:
        async with self.engine.begin() as conn:
            res = await conn.execute(delete(channels).where(channels.c.id == channel_id))
            if res.rowcount:
                await revisions.bump(conn)
        return bool(res.rowcount)
