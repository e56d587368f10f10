"""External sign-in identities of console users (docs/console.md, "Sign-in with GitHub and
OpenID Connect"): which account a provider's subject opens.

``console_identities`` is declared here on the shared ``metadata`` of
``storage/tables.py`` (migration ``0013`` creates exactly this). One row per (provider,
subject): ``provider`` is ``github`` or ``oidc``, ``subject`` the provider's stable id of the
person (GitHub's numeric user id, the ID token's ``sub``), never a login or an e-mail (both
can change or be reused). Stores what it is given: ``console/oauth.py`` checks every value.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import (
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    UniqueConstraint,
    insert,
    select,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from relaygate.storage import revisions
from relaygate.storage.base import Conflict, aware, now
from relaygate.storage.console import insert_console_user, username_taken
from relaygate.storage.records import UserRecord
from relaygate.storage.tables import metadata, users
from relaygate.storage.users import user_from_row

__all__ = ["Identity", "IdentityStore", "console_identities"]

console_identities = Table(
    "console_identities",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("provider", String(32), nullable=False),  # github | oidc
    Column("subject", String(255), nullable=False),  # the provider's stable id of the person
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("email", String(320), nullable=True),  # a verified e-mail, when the provider gave one
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("provider", "subject", name="uq_console_identities_subject"),
)
Index("ix_console_identities_user", console_identities.c.user_id)


@dataclass(frozen=True, slots=True)
class Identity:
    provider: str
    subject: str
    user_id: int
    email: str | None
    created_at: datetime


class IdentityStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def find(self, provider: str, subject: str) -> tuple[Identity, UserRecord] | None:
        """The identity and the user it opens, or None when the subject is not linked."""
        c = console_identities.c
        q = (
            select(users, c.provider, c.subject, c.email, c.created_at.label("linked_at"))
            .select_from(console_identities.join(users, users.c.id == c.user_id))
            .where(c.provider == provider, c.subject == subject)
        )
        async with self.engine.connect() as conn:
            row = (await conn.execute(q)).mappings().first()
        if row is None:
            return None
        user = user_from_row(row)
        ident = Identity(
            row["provider"], row["subject"], user.id, row["email"], aware(row["linked_at"]) or now()
        )
        return ident, user

    async def for_user(self, user_id: int) -> list[Identity]:
        q = select(console_identities).where(console_identities.c.user_id == user_id)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(q)).mappings().all()
        return [
            Identity(
                r["provider"],
                r["subject"],
                int(r["user_id"]),
                r["email"],
                aware(r["created_at"]) or now(),
            )
            for r in rows
        ]

    async def username_taken(self, username: str) -> bool:
        return await username_taken(self.engine, username)

    async def create_user(
        self, username: str, provider: str, subject: str, email: str | None
    ) -> UserRecord:
        """A new active user (role ``user``, group ``default``, no console password) linked
        to the identity, in one transaction. :class:`Conflict` when the name is taken or the
        identity is already linked (two sign-ins at once: the caller looks it up again)."""
        at = now()
        try:
            async with self.engine.begin() as conn:
                user = await insert_console_user(conn, username, at)
                await conn.execute(
                    insert(console_identities).values(
                        provider=provider,
                        subject=subject,
                        user_id=user.id,
                        email=email,
                        created_at=at,
                    )
                )
                await revisions.bump(conn)
        except IntegrityError as exc:
            raise Conflict(f"user {username!r} or identity {provider}:{subject} exists") from exc
        return user
