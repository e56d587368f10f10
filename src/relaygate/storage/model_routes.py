"""The ``model_routes`` table: model aliases, fallback chains, per-model hedging and
request-shaping rules.

Stores what it is given: names, fallbacks and thresholds are validated by
``relaygate.services.routes`` (which also refuses cycles and unknown fallbacks). Every write
bumps the ``config`` revision in the same transaction, so every worker reloads its snapshot
(``storage/snapshot.py`` loads the routes with the channels).
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from relaygate.storage import revisions
from relaygate.storage.base import Conflict, aware, columns, now
from relaygate.storage.records import ModelRouteRecord
from relaygate.storage.tables import model_routes

__all__ = ["ModelRouteStore", "route_from_row"]

WRITABLE = ("fallbacks", "hedge_after_ms", "description", "shaping")


def route_from_row(r: Any) -> ModelRouteRecord:
    created = aware(r["created_at"]) or now()
    return ModelRouteRecord(
        name=r["name"],
        fallbacks=tuple(r["fallbacks"] or ()),
        hedge_after_ms=None if r["hedge_after_ms"] is None else int(r["hedge_after_ms"]),
        description=r["description"] or "",
        created_at=created,
        updated_at=aware(r["updated_at"]) or created,
        shaping=r.get("shaping") or None,
    )


class ModelRouteStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def create(
        self,
        *,
        name: str,
        fallbacks: Sequence[str] = (),
        hedge_after_ms: int | None = None,
        description: str = "",
        shaping: Mapping[str, Any] | None = None,
    ) -> ModelRouteRecord:
        """Raises :class:`Conflict` when a route of that name exists."""
        stamp = now()
        values = {
            "name": name,
            "fallbacks": list(fallbacks),
            "hedge_after_ms": hedge_after_ms,
            "description": description,
            "shaping": dict(shaping) if shaping else None,
            "created_at": stamp,
            "updated_at": stamp,
        }
        try:
            async with self.engine.begin() as conn:
                await conn.execute(insert(model_routes).values(**values))
                await revisions.bump(conn)
        except IntegrityError as exc:
            raise Conflict(f"a model route named {name!r} exists") from exc
        return route_from_row(values)

    async def get(self, name: str) -> ModelRouteRecord | None:
        async with self.engine.connect() as conn:
            q = select(model_routes).where(model_routes.c.name == name)
            row = (await conn.execute(q)).mappings().first()
        return route_from_row(row) if row else None

    async def list(self) -> builtins.list[ModelRouteRecord]:
        async with self.engine.connect() as conn:
            q = select(model_routes).order_by(model_routes.c.name)
            rows = (await conn.execute(q)).mappings().all()
        return [route_from_row(r) for r in rows]

    async def update(self, name: str, fields: Mapping[str, Any]) -> ModelRouteRecord | None:
        """Write ``fields`` (any of ``WRITABLE``); None if there is no such route."""
        values = columns(fields, WRITABLE)
        if "fallbacks" in values:
            values["fallbacks"] = list(values["fallbacks"])
        if "shaping" in values:  # {} and null: no rules
            values["shaping"] = dict(values["shaping"]) if values["shaping"] else None
        values["updated_at"] = now()
        async with self.engine.begin() as conn:
            res = await conn.execute(
                update(model_routes).where(model_routes.c.name == name).values(**values)
            )
            if not res.rowcount:
                return None
            await revisions.bump(conn)
            q = select(model_routes).where(model_routes.c.name == name)
            row = (await conn.execute(q)).mappings().first()
        return route_from_row(row) if row else None

    async def delete(self, name: str) -> bool:
        async with self.engine.begin() as conn:
            res = await conn.execute(delete(model_routes).where(model_routes.c.name == name))
            if res.rowcount:
                await revisions.bump(conn)
        return bool(res.rowcount)
