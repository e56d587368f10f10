"""The ``upstream_objects`` table: objects created upstream through a channel — files,
fine-tuning jobs, assistants, threads, runs, vector stores, batches, videos — with their
owner (user, key) and the channel that holds them.

``relay/objects.py`` records an object when the upstream answers its creation, looks it up
before every later call on it (ownership, and the channel the call must go to), keeps the
last answer seen for it in ``data`` (the top-level list endpoints serve it), marks it
deleted, and claims its deferred charge once (``claim_billing``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from relaygate.storage.base import aware, now
from relaygate.storage.tables import upstream_objects

__all__ = ["ObjectRecord", "ObjectStore"]


@dataclass(frozen=True, slots=True)
class ObjectRecord:
    id: str
    kind: str
    user_id: int
    key_id: int | None
    channel_id: int
    parent_id: str | None
    model: str | None
    created_at: datetime
    data: str | None
    billed: bool
    deleted: bool


def _record(r: Any) -> ObjectRecord:
    return ObjectRecord(
        id=r["id"],
        kind=r["kind"],
        user_id=int(r["user_id"]),
        key_id=None if r["key_id"] is None else int(r["key_id"]),
        channel_id=int(r["channel_id"]),
        parent_id=r["parent_id"],
        model=r["model"],
        created_at=aware(r["created_at"]) or now(),
        data=r["data"],
        billed=bool(r["billed"]),
        deleted=bool(r["deleted"]),
    )


class ObjectStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def add(
        self,
        *,
        obj_id: str,
        kind: str,
        user_id: int,
        key_id: int | None,
        channel_id: int,
        parent_id: str | None = None,
        model: str | None = None,
        data: str | None = None,
    ) -> bool:
        """Record a new object; False when the id is already recorded (kept as it was)."""
        values = {
            "id": obj_id,
            "kind": kind,
            "user_id": user_id,
            "key_id": key_id,
            "channel_id": channel_id,
            "parent_id": parent_id,
            "model": model,
            "created_at": now(),
            "data": data,
            "billed": False,
            "deleted": False,
        }
        try:
            async with self.engine.begin() as conn:
                await conn.execute(insert(upstream_objects).values(**values))
        except IntegrityError:
            return False
        return True

    async def get(self, obj_id: str) -> ObjectRecord | None:
        async with self.engine.connect() as conn:
            row = (
                (
                    await conn.execute(
                        select(upstream_objects).where(upstream_objects.c.id == obj_id)
                    )
                )
                .mappings()
                .first()
            )
        return None if row is None else _record(row)

    async def update(self, obj_id: str, *, data: str | None = None, deleted: bool = False) -> None:
        values: dict[str, Any] = {}
        if data is not None:
            values["data"] = data
        if deleted:
            values["deleted"] = True
        if not values:
            return
        async with self.engine.begin() as conn:
            await conn.execute(
                update(upstream_objects).where(upstream_objects.c.id == obj_id).values(**values)
            )

    async def claim_billing(self, obj_id: str) -> bool:
        """Mark the object's deferred charge as made; True for the one caller that did it."""
        async with self.engine.begin() as conn:
            result = await conn.execute(
                update(upstream_objects)
                .where(and_(upstream_objects.c.id == obj_id, upstream_objects.c.billed.is_(False)))
                .values(billed=True)
            )
        return bool(result.rowcount)

    async def unclaim_billing(self, obj_id: str) -> None:
        """Undo :meth:`claim_billing` when the charge could not be made after all."""
        async with self.engine.begin() as conn:
            await conn.execute(
                update(upstream_objects).where(upstream_objects.c.id == obj_id).values(billed=False)
            )

    async def list(
        self,
        user_id: int,
        kind: str,
        *,
        limit: int,
        after: str | None = None,
        before: str | None = None,
        ascending: bool = False,
    ) -> tuple[list[ObjectRecord], bool]:
        """The user's live objects of ``kind``, newest first (or oldest first), paged by
        cursor ids like OpenAI's lists; (page, has_more). ``after`` gives the page that
        follows the cursor, ``before`` the page just before it (has_more: more before
        that); both give the objects between them. An unknown cursor is ignored."""
        t = upstream_objects
        cond = and_(t.c.user_id == user_id, t.c.kind == kind, t.c.deleted.is_(False))
        found: set[str] = set()
        async with self.engine.connect() as conn:
            for cursor, forward in ((after, True), (before, False)):
                if cursor is None:
                    continue
                row = (
                    (
                        await conn.execute(
                            select(t.c.created_at, t.c.id).where(and_(cond, t.c.id == cursor))
                        )
                    )
                    .mappings()
                    .first()
                )
                if row is None:
                    continue
                found.add("after" if forward else "before")
                later = forward != ascending  # "after" in a newest-first list is older
                key = (row["created_at"], row["id"])
                if later:
                    cond = and_(
                        cond,
                        (t.c.created_at < key[0])
                        | ((t.c.created_at == key[0]) & (t.c.id < key[1])),
                    )
                else:
                    cond = and_(
                        cond,
                        (t.c.created_at > key[0])
                        | ((t.c.created_at == key[0]) & (t.c.id > key[1])),
                    )
            # only ``before``: read from the cursor backwards, then turn the page round
            backward = found == {"before"}
            up = ascending != backward
            order = (
                (t.c.created_at.asc(), t.c.id.asc())
                if up
                else (t.c.created_at.desc(), t.c.id.desc())
            )
            rows = (
                (await conn.execute(select(t).where(cond).order_by(*order).limit(limit + 1)))
                .mappings()
                .all()
            )
        page = [_record(r) for r in rows[:limit]]
        if backward:
            page.reverse()
        return page, len(rows) > limit
