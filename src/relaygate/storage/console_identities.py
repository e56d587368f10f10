"""External sign-in identities of console users (docs/console.md, "Sign-in with GitHub and
OpenID Connect"): which account a provider's subject opens.

``console_identities`` is declared here on the shared ``metadata`` of
``storage/tables.py`` (migration ``0013`` creates exactly this). One row per (provider,
subject): ``provider`` is ``github`` or ``oidc``, ``subject`` the provider's stable id of the
person (GitHub's numeric user id, the ID token's ``sub``), never a login or an e-mail (both
can change or be reused). Stores what it is given: ``console/oauth.py`` checks every value.

A signed-in user links an identity to the account (:meth:`IdentityStore.link`: one identity
per provider and user, a subject linked to another user is refused) and unlinks it
(:meth:`IdentityStore.unlink`: refused when the account would keep no way to sign in).
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
    delete,
    exists,
    insert,
    or_,
    select,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from relaygate.storage import revisions
from relaygate.storage.base import Conflict, aware, now
from relaygate.storage.console import console_credentials, insert_console_user, username_taken
from relaygate.storage.records import UserRecord
from relaygate.storage.tables import metadata, users
from relaygate.storage.users import user_from_row

__all__ = [
    "ALREADY",
    "ELSEWHERE",
    "LAST_WAY_IN",
    "LINKED",
    "NOT_LINKED",
    "PROVIDER_TAKEN",
    "UNLINKED",
    "Identity",
    "IdentityStore",
    "console_identities",
]

#: what :meth:`IdentityStore.link` found (``linked``: the row was added)
LINKED, ALREADY, ELSEWHERE, PROVIDER_TAKEN = "linked", "already", "elsewhere", "provider_taken"
#: what :meth:`IdentityStore.unlink` found (``unlinked``: the row was deleted)
UNLINKED, NOT_LINKED, LAST_WAY_IN = "unlinked", "not_linked", "last_way_in"

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
# one identity per provider for a user (migration 0016); also the index of lookups by user
Index(
    "uq_console_identities_user_provider",
    console_identities.c.user_id,
    console_identities.c.provider,
    unique=True,
)


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

    async def _owner(self, provider: str, subject: str) -> int | None:
        c = console_identities.c
        q = select(c.user_id).where(c.provider == provider, c.subject == subject)
        async with self.engine.connect() as conn:
            uid = await conn.scalar(q)
        return None if uid is None else int(uid)

    async def link(self, user_id: int, provider: str, subject: str, email: str | None) -> str:
        """Link the identity to the user: :data:`LINKED`; :data:`ALREADY` when it is this
        user's already; :data:`ELSEWHERE` when another user has it; :data:`PROVIDER_TAKEN`
        when the user has another identity of this provider (nothing changes but for
        :data:`LINKED`)."""
        c = console_identities.c
        try:
            async with self.engine.begin() as conn:
                q = select(c.user_id, c.provider, c.subject).where(
                    (c.user_id == user_id) & (c.provider == provider)
                    | (c.provider == provider) & (c.subject == subject)
                )
                rows = (await conn.execute(q)).mappings().all()
                for row in rows:
                    if row["subject"] == subject:
                        return ALREADY if int(row["user_id"]) == user_id else ELSEWHERE
                if rows:
                    return PROVIDER_TAKEN
                await conn.execute(
                    insert(console_identities).values(
                        provider=provider,
                        subject=subject,
                        user_id=user_id,
                        email=email,
                        created_at=now(),
                    )
                )
        except IntegrityError:  # linked in between: look again
            owner = await self._owner(provider, subject)
            if owner is None:  # not this subject: the user's one identity of this provider
                return PROVIDER_TAKEN
            return ALREADY if owner == user_id else ELSEWHERE
        return LINKED

    async def unlink(self, user_id: int, provider: str, usable: set[str]) -> str:
        """Delete the user's identity of ``provider``: :data:`UNLINKED`; :data:`NOT_LINKED`
        when there is none; :data:`LAST_WAY_IN` (nothing deleted) when the user has no
        console password and no other identity of a provider in ``usable`` (the providers
        that are on). The check and the delete are one statement, after the user's row is
        locked (PostgreSQL): two unlinks at once cannot both pass the check."""
        c = console_identities.c
        cred = console_credentials.c
        other = console_identities.alias("other")
        way_in = or_(
            exists().where(cred.user_id == user_id, cred.password_hash != ""),
            exists().where(
                other.c.user_id == user_id,
                other.c.provider != provider,
                other.c.provider.in_(sorted(usable)),
            ),
        )
        async with self.engine.begin() as conn:
            lock = select(users.c.id).where(users.c.id == user_id).with_for_update()
            await conn.execute(lock)
            # one statement checks and deletes (SQLite runs it as one write)
            gone = await conn.execute(
                delete(console_identities).where(
                    c.user_id == user_id, c.provider == provider, way_in
                )
            )
            if gone.rowcount:
                return UNLINKED
            q = select(c.id).where(c.user_id == user_id, c.provider == provider).limit(1)
            linked = await conn.scalar(q)
        return NOT_LINKED if linked is None else LAST_WAY_IN

    async def has_password(self, user_id: int) -> bool:
        cred = console_credentials.c
        q = select(cred.password_hash).where(cred.user_id == user_id)
        async with self.engine.connect() as conn:
            return bool(await conn.scalar(q))
