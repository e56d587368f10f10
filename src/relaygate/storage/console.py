"""The web console's tables and store (docs/console.md): password credentials and TOTP
secrets beside ``users`` (``console_credentials``), and server-side sessions
(``console_sessions``: the row is keyed by an HMAC of the session id, never the id). The
two-factor recovery codes are ``storage/console_recovery.py``'s; turning TOTP on or off
writes them in the same transaction.

The tables are declared here on the shared ``metadata`` of ``storage/tables.py`` (migration
``0011`` creates exactly these). Stores what it is given: the console's service layer
(``relaygate.console``) checks every value first.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    delete,
    false,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from relaygate.storage import revisions
from relaygate.storage.base import Conflict, aware, now
from relaygate.storage.console_recovery import delete_codes, replace_codes
from relaygate.storage.records import UserRecord
from relaygate.storage.tables import metadata, users
from relaygate.storage.users import user_from_row

__all__ = [
    "ConsoleStore",
    "Credentials",
    "SessionRow",
    "TwoFactorReset",
    "console_credentials",
    "console_sessions",
    "insert_console_user",
    "username_taken",
]

console_credentials = Table(
    "console_credentials",
    metadata,
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("password_hash", String(256), nullable=False),  # argon2id, PHC string
    # Fernet tokens (storage/crypto.py) of the base32 TOTP secret: in use, and being set up
    Column("totp_secret", Text, nullable=True),
    Column("totp_pending", Text, nullable=True),
    Column("totp_enabled", Boolean, nullable=False, default=False, server_default=false()),
    Column("totp_last_step", BigInteger, nullable=True),  # a code is accepted once
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

console_sessions = Table(
    "console_sessions",
    metadata,
    Column("id_hash", String(64), primary_key=True),  # HMAC-SHA256 of the session id
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("kind", String(16), nullable=False, default="session"),  # session | totp
    Column("attempts", Integer, nullable=False, default=0, server_default="0"),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("last_seen_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("ip", String(64), nullable=False, default="", server_default=""),
    Column("user_agent", String(256), nullable=False, default="", server_default=""),
)
Index("ix_console_sessions_user", console_sessions.c.user_id)
Index("ix_console_sessions_expires", console_sessions.c.expires_at)


@dataclass(frozen=True, slots=True)
class Credentials:
    user_id: int
    password_hash: str
    totp_secret: str | None  # encrypted
    totp_pending: str | None  # encrypted
    totp_enabled: bool
    totp_last_step: int | None


@dataclass(frozen=True, slots=True)
class TwoFactorReset:
    """What :meth:`ConsoleStore.reset_two_factor` did."""

    was_on: bool
    recovery_codes_deleted: int
    sessions_ended: int


@dataclass(frozen=True, slots=True)
class SessionRow:
    id_hash: str
    user_id: int
    kind: str
    attempts: int
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime


def _credentials(r: Any) -> Credentials:
    return Credentials(
        int(r["user_id"]),
        r["password_hash"],
        r["totp_secret"],
        r["totp_pending"],
        bool(r["totp_enabled"]),
        None if r["totp_last_step"] is None else int(r["totp_last_step"]),
    )


def _session(r: Any) -> SessionRow:
    return SessionRow(
        r["id_hash"],
        int(r["user_id"]),
        r["kind"],
        int(r["attempts"]),
        aware(r["created_at"]) or now(),
        aware(r["last_seen_at"]) or now(),
        aware(r["expires_at"]) or now(),
    )


async def username_taken(engine: AsyncEngine, username: str) -> bool:
    """Whether a user of this name exists, whatever its case (``Alice`` and ``alice``
    would be two people's look-alikes)."""
    q = select(users.c.id).where(func.lower(users.c.username) == username.lower()).limit(1)
    async with engine.connect() as conn:
        return (await conn.scalar(q)) is not None


async def insert_console_user(conn: AsyncConnection, username: str, at: datetime) -> UserRecord:
    """Insert a user opened from the console (active, role ``user``, group ``default``) in
    the caller's transaction, which adds what signs it in and bumps the revision.
    ``IntegrityError`` when the name is taken."""
    values = {
        "username": username,
        "role": "user",
        "status": "active",
        "created_at": at,
        "group_name": "default",
    }
    res = await conn.execute(insert(users).values(**values))
    uid = int(res.inserted_primary_key[0])  # type: ignore[index]
    return user_from_row({"id": uid, **values})


class ConsoleStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    # ---- accounts ----------------------------------------------------------------------
    async def username_taken(self, username: str) -> bool:
        """Whether a user of this name exists, whatever its case."""
        return await username_taken(self.engine, username)

    async def create_account(self, username: str, password_hash: str) -> UserRecord:
        """A new active user (role ``user``, group ``default``) with its password, in one
        transaction. :class:`Conflict` when the name is taken."""
        at = now()
        try:
            async with self.engine.begin() as conn:
                user = await insert_console_user(conn, username, at)
                await conn.execute(
                    insert(console_credentials).values(
                        user_id=user.id, password_hash=password_hash, created_at=at, updated_at=at
                    )
                )
                await revisions.bump(conn)
        except IntegrityError as exc:
            raise Conflict(f"user {username!r} already exists") from exc
        return user

    async def credentials(self, user_id: int) -> Credentials | None:
        q = select(console_credentials).where(console_credentials.c.user_id == user_id)
        async with self.engine.connect() as conn:
            row = (await conn.execute(q)).mappings().first()
        return _credentials(row) if row else None

    async def user_and_credentials(
        self, username: str
    ) -> tuple[UserRecord | None, Credentials | None]:
        """The user of exactly this name and its credentials (None when it has none)."""
        q = (
            select(users, *[c for c in console_credentials.c if c.name != "user_id"])
            .select_from(
                users.outerjoin(console_credentials, console_credentials.c.user_id == users.c.id)
            )
            .where(users.c.username == username)
        )
        async with self.engine.connect() as conn:
            row = (await conn.execute(q)).mappings().first()
        if row is None:
            return None, None
        user = user_from_row(row)
        if row["password_hash"] is None:
            return user, None
        return user, _credentials({**row, "user_id": user.id})

    async def set_password(self, user_id: int, password_hash: str) -> None:
        """Set (or create) the user's password."""
        at = now()
        async with self.engine.begin() as conn:
            res = await conn.execute(
                update(console_credentials)
                .where(console_credentials.c.user_id == user_id)
                .values(password_hash=password_hash, updated_at=at)
            )
            if not res.rowcount:
                try:
                    await conn.execute(
                        insert(console_credentials).values(
                            user_id=user_id,
                            password_hash=password_hash,
                            created_at=at,
                            updated_at=at,
                        )
                    )
                except IntegrityError as exc:
                    raise Conflict(f"user {user_id} does not exist") from exc

    async def update_totp(self, user_id: int, **values: Any) -> None:
        """Write TOTP columns (``totp_secret``, ``totp_pending``, ``totp_enabled``,
        ``totp_last_step``)."""
        allowed = {"totp_secret", "totp_pending", "totp_enabled", "totp_last_step"}
        unknown = set(values) - allowed
        if unknown:
            raise TypeError(f"not TOTP columns: {', '.join(sorted(unknown))}")
        async with self.engine.begin() as conn:
            await conn.execute(
                update(console_credentials)
                .where(console_credentials.c.user_id == user_id)
                .values(**values, updated_at=now())
            )

    async def enable_totp(
        self, user_id: int, pending: str, step: int, recovery_hashes: Sequence[str]
    ) -> bool:
        """Turn two-factor on with the pending secret ``pending`` (the step of the code that
        confirmed it is used) and make ``recovery_hashes`` the user's recovery codes, in one
        transaction. False (nothing written) when that secret is no longer the pending one
        or two-factor is already on: another request got there first."""
        c = console_credentials.c
        at = now()
        async with self.engine.begin() as conn:
            res = await conn.execute(
                update(console_credentials)
                .where(c.user_id == user_id, c.totp_pending == pending, c.totp_enabled == false())
                .values(
                    totp_secret=pending,
                    totp_pending=None,
                    totp_enabled=True,
                    totp_last_step=step,
                    updated_at=at,
                )
            )
            if not res.rowcount:
                return False
            await replace_codes(conn, user_id, recovery_hashes, at)
        return True

    async def disable_totp(self, user_id: int) -> None:
        """Turn two-factor off: the secrets are cleared and the recovery codes deleted, in
        one transaction."""
        async with self.engine.begin() as conn:
            await conn.execute(
                update(console_credentials)
                .where(console_credentials.c.user_id == user_id)
                .values(totp_secret=None, totp_pending=None, totp_enabled=False, updated_at=now())
            )
            await delete_codes(conn, user_id)

    async def reset_two_factor(self, user_id: int) -> TwoFactorReset:
        """An admin's reset of a user who lost both the authenticator and the recovery
        codes: when two-factor is on, the secrets and the used step are cleared, the flag
        turned off, the recovery codes deleted and every console session of the user ended
        (a half-done sign-in too), in one transaction. Nothing is written when it is off
        (``was_on`` False); the conditional update decides, so of two resets at once one
        does the work."""
        c = console_credentials.c
        async with self.engine.begin() as conn:
            res = await conn.execute(
                update(console_credentials)
                .where(c.user_id == user_id, c.totp_enabled.is_(True))
                .values(
                    totp_secret=None,
                    totp_pending=None,
                    totp_enabled=False,
                    totp_last_step=None,
                    updated_at=now(),
                )
            )
            if not res.rowcount:
                return TwoFactorReset(False, 0, 0)
            codes = await delete_codes(conn, user_id)
            ended = await conn.execute(
                delete(console_sessions).where(console_sessions.c.user_id == user_id)
            )
        return TwoFactorReset(True, codes, int(ended.rowcount or 0))

    async def claim_totp_step(self, user_id: int, step: int) -> bool:
        """Record ``step`` as used if it is later than the last used one (atomic): a TOTP
        code is accepted once, even by two requests at the same time."""
        c = console_credentials.c
        async with self.engine.begin() as conn:
            res = await conn.execute(
                update(console_credentials)
                .where(c.user_id == user_id)
                .where((c.totp_last_step.is_(None)) | (c.totp_last_step < step))
                .values(totp_last_step=step)
            )
        return bool(res.rowcount)

    # ---- sessions ----------------------------------------------------------------------
    async def create_session(
        self,
        id_hash: str,
        user_id: int,
        *,
        kind: str,
        expires_at: datetime,
        ip: str,
        user_agent: str,
    ) -> None:
        at = now()
        async with self.engine.begin() as conn:
            await conn.execute(
                insert(console_sessions).values(
                    id_hash=id_hash,
                    user_id=user_id,
                    kind=kind,
                    attempts=0,
                    created_at=at,
                    last_seen_at=at,
                    expires_at=expires_at,
                    ip=ip[:64],
                    user_agent=user_agent[:256],
                )
            )

    async def session(self, id_hash: str) -> SessionRow | None:
        q = select(console_sessions).where(console_sessions.c.id_hash == id_hash)
        async with self.engine.connect() as conn:
            row = (await conn.execute(q)).mappings().first()
        return _session(row) if row else None

    async def touch_session(self, id_hash: str, at: datetime) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                update(console_sessions)
                .where(console_sessions.c.id_hash == id_hash)
                .values(last_seen_at=at)
            )

    async def count_attempt(self, id_hash: str) -> int:
        """One more failed code on a TOTP ticket; returns the count."""
        async with self.engine.begin() as conn:
            await conn.execute(
                update(console_sessions)
                .where(console_sessions.c.id_hash == id_hash)
                .values(attempts=console_sessions.c.attempts + 1)
            )
            value = await conn.scalar(
                select(console_sessions.c.attempts).where(console_sessions.c.id_hash == id_hash)
            )
        return int(value or 0)

    async def delete_session(self, id_hash: str) -> bool:
        async with self.engine.begin() as conn:
            res = await conn.execute(
                delete(console_sessions).where(console_sessions.c.id_hash == id_hash)
            )
        return bool(res.rowcount)

    async def delete_user_sessions(self, user_id: int, *, keep: str | None = None) -> int:
        """End every session of the user (but ``keep``, the caller's own)."""
        q = delete(console_sessions).where(console_sessions.c.user_id == user_id)
        if keep is not None:
            q = q.where(console_sessions.c.id_hash != keep)
        async with self.engine.begin() as conn:
            res = await conn.execute(q)
        return int(res.rowcount or 0)

    async def purge_expired(self, at: datetime) -> int:
        async with self.engine.begin() as conn:
            res = await conn.execute(
                delete(console_sessions).where(console_sessions.c.expires_at < at)
            )
        return int(res.rowcount or 0)
