"""The configuration snapshot: every user, key, channel and model route read in one pass for
the catalog."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from relaygate.storage import revisions
from relaygate.storage.channels import channel_from_row
from relaygate.storage.crypto import Secrets
from relaygate.storage.keys import key_from_row
from relaygate.storage.model_routes import route_from_row
from relaygate.storage.records import ChannelRecord, KeyRecord, ModelRouteRecord, UserRecord
from relaygate.storage.tables import api_keys, channels, model_routes, users
from relaygate.storage.users import user_from_row

__all__ = ["Snapshot", "load_snapshot"]


@dataclass(slots=True, frozen=True)
class Snapshot:
    revision: int
    users: dict[int, UserRecord]
    keys: dict[str, KeyRecord]  # by key_hash
    channels: tuple[ChannelRecord, ...]
    #: model routes by name (aliases, fallback chains, hedging: ``services/routes.py``)
    routes: dict[str, ModelRouteRecord] = field(default_factory=dict)


async def load_snapshot(engine: AsyncEngine, secrets: Secrets) -> Snapshot:
    async with engine.connect() as conn:
        rev = await revisions.current(conn)
        urows = (await conn.execute(select(users))).mappings().all()
        krows = (await conn.execute(select(api_keys))).mappings().all()
        crows = (await conn.execute(select(channels).order_by(channels.c.id))).mappings().all()
        rrows = (await conn.execute(select(model_routes))).mappings().all()
    return Snapshot(
        revision=rev,
        users={int(r["id"]): user_from_row(r) for r in urows},
        keys={r["key_hash"]: key_from_row(r) for r in krows},
        channels=tuple(channel_from_row(r, secrets) for r in crows),
        routes={r["name"]: route_from_row(r) for r in rrows},
    )
