"""The admin audit log (``admin_audit``, migration ``0012``): one row per state-changing admin
call, made through the admin API (an admin token) or the console (a signed-in admin). A row
names who (user id and name), how (``api`` or ``console``), what (method, path, the answer's
status) and the names of the body's top-level fields — never their values, which can be
channel keys, passwords or other secrets. Rows are written by ``api/admin_routes.py`` after
each call and read back by ``GET /admin/api/audit`` (docs/console.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    String,
    Table,
    insert,
    select,
)
from sqlalchemy.ext.asyncio import AsyncEngine

from relaygate.storage.base import aware, now
from relaygate.storage.tables import metadata

__all__ = ["AuditEntry", "AuditStore", "admin_audit"]

_BIG = BigInteger().with_variant(Integer, "sqlite")

admin_audit = Table(
    "admin_audit",
    metadata,
    Column("id", _BIG, primary_key=True, autoincrement=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("actor_id", Integer, nullable=True),  # no foreign key: rows outlive their user
    Column("actor", String(64), nullable=False, default="", server_default=""),
    Column("via", String(16), nullable=False),  # api | console
    Column("method", String(8), nullable=False),
    Column("path", String(256), nullable=False),
    Column("status", Integer, nullable=False),
    Column("fields", String(512), nullable=False, default="", server_default=""),
    Column("ip", String(64), nullable=False, default="", server_default=""),
)
Index("ix_admin_audit_created", admin_audit.c.created_at)
Index("ix_admin_audit_actor_created", admin_audit.c.actor_id, admin_audit.c.created_at)


@dataclass(frozen=True, slots=True)
class AuditEntry:
    actor_id: int | None
    actor: str
    via: str
    method: str
    path: str
    status: int
    fields: tuple[str, ...] = ()
    ip: str = ""


def _row(r: Any) -> dict[str, Any]:
    at: datetime | None = aware(r["created_at"])
    return {
        "id": int(r["id"]),
        "created_at": at.isoformat() if at else None,
        "actor_id": r["actor_id"],
        "actor": r["actor"],
        "via": r["via"],
        "method": r["method"],
        "path": r["path"],
        "status": int(r["status"]),
        "fields": [f for f in str(r["fields"]).split(",") if f],
        "ip": r["ip"],
    }


class AuditStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def add(self, entry: AuditEntry) -> None:
        fields = ",".join(f[:64] for f in entry.fields)[:512]
        async with self.engine.begin() as conn:
            await conn.execute(
                insert(admin_audit).values(
                    created_at=now(),
                    actor_id=entry.actor_id,
                    actor=entry.actor[:64],
                    via=entry.via[:16],
                    method=entry.method[:8],
                    path=entry.path[:256],
                    status=entry.status,
                    fields=fields,
                    ip=entry.ip[:64],
                )
            )

    async def list(
        self,
        *,
        limit: int = 50,
        before_id: int | None = None,
        actor_id: int | None = None,
        path_prefix: str = "",
    ) -> list[dict[str, Any]]:
        """Newest first; ``before_id`` pages back."""
        q = select(admin_audit).order_by(admin_audit.c.id.desc()).limit(limit)
        if before_id is not None:
            q = q.where(admin_audit.c.id < before_id)
        if actor_id is not None:
            q = q.where(admin_audit.c.actor_id == actor_id)
        if path_prefix:
            q = q.where(admin_audit.c.path.startswith(path_prefix, autoescape=True))
        async with self.engine.connect() as conn:
            rows = (await conn.execute(q)).mappings().all()
        return [_row(r) for r in rows]
