"""The configuration snapshot: every user, key and channel read in one pass for the catalog."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from relaygate.storage import revisions
from relaygate.storage.channels import channel_from_row
from relaygate.storage.crypto import Secrets
from relaygate.storage.keys import key_from_row
from relaygate.storage.records import ChannelRecord, KeyRecord, UserRecord
from relaygate.storage.tables import api_keys, channels, users
from relaygate.storage.users import user_from_row

__all__ = ["Snapshot", "load_snapshot"]


@dataclass(slots=True, frozen=True)
class Snapshot:
    revision: int
    users: dict[int, UserRecord]
    keys: dict[str, KeyRecord]  # by key_hash
    channels: tuple[ChannelRecord, ...]


async def load_snapshot(engine: AsyncEngine, secrets: Secrets) -> Snapshot:
    async with engine.connect() as conn:
        rev = await revisions.current(conn)
        urows = (await conn.execute(select(users))).mappings().all()
        krows = (await conn.execute(select(api_keys))).mappings().all()
        crows = (await conn.execute(select(channels).order_by(channels.c.id))).mappings().all()
    return Snapshot(
        revision=rev,
        users={int(r["id"]): user_from_row(r) for r in urows},
        keys={r["key_hash"]: key_from_row(r) for r in krows},
        channels=tuple(channel_from_row(r, secrets) for r in crows),
    )
