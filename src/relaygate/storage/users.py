"""The ``users`` table. Stores what it is given: values are validated by ``relaygate.services``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from relaygate.storage import revisions
from relaygate.storage.base import Conflict, aware, columns, now
from relaygate.storage.records import UserRecord
from relaygate.storage.tables import users

__all__ = ["UserStore", "user_from_row"]

WRITABLE = ("role", "status", "group_name", "rpm_limit", "tpm_limit", "concurrency_limit")


def user_from_row(r: Any) -> UserRecord:
    """A row (or mapping) of ``users`` as a record; the balance columns are billing's."""
    return UserRecord(
        int(r["id"]),
        r["username"],
        r["role"],
        r["status"],
        aware(r["created_at"]) or now(),
        group_name=r.get("group_name") or "default",
        rpm_limit=r.get("rpm_limit"),
        tpm_limit=r.get("tpm_limit"),
        concurrency_limit=r.get("concurrency_limit"),
    )


class UserStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def create(
        self,
        username: str,
        role: str = "user",
        *,
        group_name: str = "default",
        rpm_limit: int | None = None,
        tpm_limit: int | None = None,
        concurrency_limit: int | None = None,
    ) -> UserRecord:
        values = {
            "username": username,
            "role": role,
            "status": "active",
            "created_at": now(),
            "group_name": group_name,
            "rpm_limit": rpm_limit,
            "tpm_limit": tpm_limit,
            "concurrency_limit": concurrency_limit,
        }
        try:
            async with self.engine.begin() as conn:
                res = await conn.execute(insert(users).values(**values))
                await revisions.bump(conn)
        except IntegrityError as exc:
            raise Conflict(f"user {username!r} already exists") from exc
        uid = int(res.inserted_primary_key[0])  # type: ignore[index]
        return user_from_row({"id": uid, **values})

    async def get(
        self, *, user_id: int | None = None, username: str | None = None
    ) -> UserRecord | None:
        q = select(users)
        q = (
            q.where(users.c.id == user_id)
            if user_id is not None
            else q.where(users.c.username == username)
        )
        async with self.engine.connect() as conn:
            row = (await conn.execute(q)).mappings().first()
        return user_from_row(row) if row else None

    async def search(
        self, q: str = "", *, limit: int | None = None, after_id: int | None = None
    ) -> list[tuple[UserRecord, int, int]]:
        """Users whose name contains ``q`` (any letter case) or whose id is ``q``, by id,
        with their (balance, leased) units; ``after_id`` pages on."""
        query = select(users).order_by(users.c.id)
        if q:
            match = func.lower(users.c.username).contains(q.lower(), autoescape=True)
            if q.isascii() and q.isdigit() and len(q) < 10:
                match = or_(match, users.c.id == int(q))
            query = query.where(match)
        if after_id is not None:
            query = query.where(users.c.id > after_id)
        if limit is not None:
            query = query.limit(limit)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [(user_from_row(r), int(r["balance"] or 0), int(r["leased"] or 0)) for r in rows]

    async def list(self) -> list[UserRecord]:
        async with self.engine.connect() as conn:
            rows = (await conn.execute(select(users).order_by(users.c.id))).mappings().all()
        return [user_from_row(r) for r in rows]

    async def update(self, user_id: int, fields: Mapping[str, Any]) -> bool:
        values = columns(fields, WRITABLE)
        if not values:
            return False
        async with self.engine.begin() as conn:
            res = await conn.execute(update(users).where(users.c.id == user_id).values(**values))
            await revisions.bump(conn)
        return bool(res.rowcount)
