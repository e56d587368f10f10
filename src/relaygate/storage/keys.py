"""The ``api_keys`` table: keys are stored as an HMAC, the plaintext is returned once.

Stores what it is given: values are validated by ``relaygate.services``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from relaygate.storage import revisions
from relaygate.storage.base import Conflict, aware, columns, now
from relaygate.storage.crypto import Secrets
from relaygate.storage.records import KeyRecord
from relaygate.storage.tables import api_keys

__all__ = ["ADMIN_PREFIX", "KeyStore", "key_from_row"]

ADMIN_PREFIX = "rg-admin-"
WRITABLE = (
    "status",
    "name",
    "models",
    "expires_at",
    "rpm_limit",
    "concurrency_limit",
    "tpm_limit",
    "spend_limit",
    "ip_allow",
)


def key_from_row(r: Any) -> KeyRecord:
    """A row (or mapping) of ``api_keys`` as a record; ``spent``/``leased`` are billing's."""
    models = r["models"]
    ip_allow = r.get("ip_allow")
    return KeyRecord(
        id=int(r["id"]),
        user_id=int(r["user_id"]),
        name=r["name"],
        kind=r["kind"],
        key_hash=r["key_hash"],
        key_hint=r["key_hint"],
        status=r["status"],
        expires_at=aware(r["expires_at"]),
        models=frozenset(models) if models is not None else None,
        created_at=aware(r["created_at"]) or now(),
        rpm_limit=r.get("rpm_limit"),
        concurrency_limit=r.get("concurrency_limit"),
        tpm_limit=r.get("tpm_limit"),
        spend_limit=r.get("spend_limit"),
        ip_allow=tuple(ip_allow) if ip_allow is not None else None,
    )


class KeyStore:
    def __init__(self, engine: AsyncEngine, secrets: Secrets) -> None:
        self.engine = engine
        self.secrets = secrets

    async def create(
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
        tpm_limit: int | None = None,
        spend_limit: int | None = None,
        ip_allow: Sequence[str] | None = None,
    ) -> tuple[KeyRecord, str]:
        """Create a key; returns the record and the plaintext key (shown once)."""
        plain = Secrets.new_key(ADMIN_PREFIX if kind == "admin" else prefix)
        values = {
            "user_id": user_id,
            "name": name,
            "kind": kind,
            "key_hash": self.secrets.hash_key(plain),
            "key_hint": Secrets.hint(plain),
            "status": "active",
            "expires_at": aware(expires_at),
            "models": list(models) if models is not None else None,
            "created_at": now(),
            "rpm_limit": rpm_limit,
            "concurrency_limit": concurrency_limit,
            "tpm_limit": tpm_limit,
            "spend_limit": spend_limit,
            "ip_allow": list(ip_allow) if ip_allow is not None else None,
        }
        try:
            async with self.engine.begin() as conn:
                res = await conn.execute(insert(api_keys).values(**values))
                await revisions.bump(conn)
        except IntegrityError as exc:
            raise Conflict(f"user {user_id} does not exist") from exc
        kid = int(res.inserted_primary_key[0])  # type: ignore[index]
        return key_from_row({"id": kid, **values}), plain

    async def get(self, key_id: int) -> KeyRecord | None:
        async with self.engine.connect() as conn:
            row = (
                (await conn.execute(select(api_keys).where(api_keys.c.id == key_id)))
                .mappings()
                .first()
            )
        return key_from_row(row) if row else None

    async def list(self, user_id: int | None = None) -> list[KeyRecord]:
        q = select(api_keys).order_by(api_keys.c.id)
        if user_id is not None:
            q = q.where(api_keys.c.user_id == user_id)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(q)).mappings().all()
        return [key_from_row(r) for r in rows]

    async def update(
        self, key_id: int, fields: Mapping[str, Any], *, unless_status: str | None = None
    ) -> bool:
        """Write ``fields``; with ``unless_status``, only if the key's status is not that one
        (checked in the same statement). False when no row was changed."""
        values = columns(fields, WRITABLE)
        if "expires_at" in values:
            values["expires_at"] = aware(values["expires_at"])
        if not values:
            return False
        q = update(api_keys).where(api_keys.c.id == key_id)
        if unless_status is not None:
            q = q.where(api_keys.c.status != unless_status)
        async with self.engine.begin() as conn:
            res = await conn.execute(q.values(**values))
            if res.rowcount:
                await revisions.bump(conn)
        return bool(res.rowcount)

    async def delete(self, key_id: int) -> bool:
        async with self.engine.begin() as conn:
            res = await conn.execute(delete(api_keys).where(api_keys.c.id == key_id))
            if res.rowcount:
                await revisions.bump(conn)
        return bool(res.rowcount)
