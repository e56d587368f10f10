"""Repository: every read and write of configuration state goes through here.

Writes bump the ``config`` revision so every worker (and node) reloads its
in-memory snapshot (see ``relaygate.catalog``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from relaygate.providers import PROVIDERS
from relaygate.providers.profiles import get_profile
from relaygate.storage.crypto import Secrets
from relaygate.storage.records import ChannelRecord, KeyRecord, UserRecord
from relaygate.storage.request_logs import (
    LOG_COLUMNS,
    LogRow,
    insert_request_logs,
    list_request_logs,
)
from relaygate.storage.tables import api_keys, channels, revisions, users

__all__ = ["LOG_COLUMNS", "Conflict", "LogRow", "Repository", "Snapshot"]

KEY_KINDS = ("api", "personal", "admin")


class Conflict(ValueError):
    """A uniqueness or reference rule would be broken (e.g. duplicate username)."""


@dataclass(slots=True, frozen=True)
class Snapshot:
    revision: int
    users: dict[int, UserRecord]
    keys: dict[str, KeyRecord]  # by key_hash
    channels: tuple[ChannelRecord, ...]


def _now() -> datetime:
    return datetime.now(UTC)


def _aware(dt: datetime | None) -> datetime | None:
    if dt is not None and dt.tzinfo is None:
        return dt.replace(tzinfo=UTC)
    return dt


class Repository:
    def __init__(self, engine: AsyncEngine, secrets: Secrets) -> None:
        self.engine = engine
        self.secrets = secrets

    # ---- revisions -------------------------------------------------------
    async def _bump(self, conn: AsyncConnection) -> None:
        res = await conn.execute(
            update(revisions)
            .where(revisions.c.name == "config")
            .values(value=revisions.c.value + 1)
        )
        if res.rowcount == 0:
            await conn.execute(insert(revisions).values(name="config", value=1))

    async def revision(self) -> int:
        async with self.engine.connect() as conn:
            value = await conn.scalar(select(revisions.c.value).where(revisions.c.name == "config"))
        return int(value or 0)

    # ---- users -----------------------------------------------------------
    async def create_user(self, username: str, role: str = "user") -> UserRecord:
        if not username or len(username) > 64:
            raise ValueError("username must be 1-64 characters")
        if role not in ("user", "admin"):
            raise ValueError("role must be 'user' or 'admin'")
        now = _now()
        try:
            async with self.engine.begin() as conn:
                res = await conn.execute(
                    insert(users).values(
                        username=username, role=role, status="active", created_at=now
                    )
                )
                await self._bump(conn)
        except IntegrityError as exc:
            raise Conflict(f"user {username!r} already exists") from exc
        uid = int(res.inserted_primary_key[0])  # type: ignore[index]
        return UserRecord(uid, username, role, "active", now)

    async def get_user(
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
        return _user(row) if row else None

    async def list_users(self) -> list[UserRecord]:
        async with self.engine.connect() as conn:
            rows = (await conn.execute(select(users).order_by(users.c.id))).mappings().all()
        return [_user(r) for r in rows]

    async def update_user(self, user_id: int, **fields: Any) -> bool:
        allowed = {k: v for k, v in fields.items() if k in ("status", "role")}
        if "status" in allowed and allowed["status"] not in ("active", "disabled"):
            raise ValueError("status must be 'active' or 'disabled'")
        if "role" in allowed and allowed["role"] not in ("user", "admin"):
            raise ValueError("role must be 'user' or 'admin'")
        if not allowed:
            return False
        async with self.engine.begin() as conn:
            res = await conn.execute(update(users).where(users.c.id == user_id).values(**allowed))
            await self._bump(conn)
        return bool(res.rowcount)

    # ---- keys ------------------------------------------------------------
    async def create_key(
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
    ) -> tuple[KeyRecord, str]:
        """Create a key; returns the record and the plaintext key (shown once)."""
        if kind not in KEY_KINDS:
            raise ValueError(f"kind must be one of {', '.join(KEY_KINDS)}")
        plain = Secrets.new_key("rg-admin-" if kind == "admin" else prefix)
        now = _now()
        values = {
            "user_id": user_id,
            "name": name,
            "kind": kind,
            "key_hash": self.secrets.hash_key(plain),
            "key_hint": Secrets.hint(plain),
            "status": "active",
            "expires_at": _aware(expires_at),
            "models": list(models) if models is not None else None,
            "created_at": now,
            "rpm_limit": _limit(rpm_limit),
            "concurrency_limit": _limit(concurrency_limit),
        }
        try:
            async with self.engine.begin() as conn:
                res = await conn.execute(insert(api_keys).values(**values))
                await self._bump(conn)
        except IntegrityError as exc:
            raise Conflict(f"user {user_id} does not exist") from exc
        kid = int(res.inserted_primary_key[0])  # type: ignore[index]
        return _key({"id": kid, **values}), plain

    async def list_keys(self, user_id: int | None = None) -> list[KeyRecord]:
        q = select(api_keys).order_by(api_keys.c.id)
        if user_id is not None:
            q = q.where(api_keys.c.user_id == user_id)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(q)).mappings().all()
        return [_key(r) for r in rows]

    async def update_key(self, key_id: int, **fields: Any) -> bool:
        allowed = {
            k: v
            for k, v in fields.items()
            if k in ("status", "name", "models", "expires_at", "rpm_limit", "concurrency_limit")
        }
        for name in ("rpm_limit", "concurrency_limit"):
            if name in allowed:
                allowed[name] = _limit(allowed[name])
        if "status" in allowed and allowed["status"] not in ("active", "disabled", "revoked"):
            raise ValueError("status must be 'active', 'disabled' or 'revoked'")
        if "expires_at" in allowed:
            allowed["expires_at"] = _aware(allowed["expires_at"])
        if not allowed:
            return False
        async with self.engine.begin() as conn:
            res = await conn.execute(
                update(api_keys).where(api_keys.c.id == key_id).values(**allowed)
            )
            await self._bump(conn)
        return bool(res.rowcount)

    async def delete_key(self, key_id: int) -> bool:
        async with self.engine.begin() as conn:
            res = await conn.execute(delete(api_keys).where(api_keys.c.id == key_id))
            await self._bump(conn)
        return bool(res.rowcount)

    # ---- channels --------------------------------------------------------
    async def create_channel(
        self,
        *,
        name: str,
        provider: str,
        base_url: str,
        keys: Sequence[str],
        models: Sequence[str],
        profile: str = "openai",
        model_mapping: dict[str, str] | None = None,
        priority: int = 0,
        weight: int = 1,
        config: dict[str, Any] | None = None,
        status: str = "enabled",
        is_emulator: bool = False,
    ) -> ChannelRecord:
        _check_channel(
            provider=provider,
            profile=profile,
            base_url=base_url,
            models=models,
            weight=weight,
            status=status,
        )
        now = _now()
        values = {
            "name": name,
            "provider": provider,
            "profile": profile,
            "base_url": base_url.rstrip("/"),
            "keys_encrypted": self.secrets.encrypt_keys(list(keys)),
            "models": list(models),
            "model_mapping": dict(model_mapping or {}),
            "priority": priority,
            "weight": weight,
            "status": status,
            "config": dict(config or {}),
            "is_emulator": is_emulator,
            "created_at": now,
        }
        async with self.engine.begin() as conn:
            res = await conn.execute(insert(channels).values(**values))
            await self._bump(conn)
        cid = int(res.inserted_primary_key[0])  # type: ignore[index]
        return self._channel({"id": cid, **values})

    async def list_channels(self) -> list[ChannelRecord]:
        async with self.engine.connect() as conn:
            rows = (await conn.execute(select(channels).order_by(channels.c.id))).mappings().all()
        return [self._channel(r) for r in rows]

    async def update_channel(self, channel_id: int, **fields: Any) -> bool:
        names = (
            "name",
            "profile",
            "base_url",
            "models",
            "model_mapping",
            "priority",
            "weight",
            "status",
            "config",
        )
        allowed = {k: v for k, v in fields.items() if k in names}
        if "keys" in fields:
            allowed["keys_encrypted"] = self.secrets.encrypt_keys(list(fields["keys"]))
        if not allowed:
            return False
        if "base_url" in allowed:
            allowed["base_url"] = str(allowed["base_url"]).rstrip("/")
        async with self.engine.begin() as conn:
            row = (
                (await conn.execute(select(channels).where(channels.c.id == channel_id)))
                .mappings()
                .first()
            )
            if row is None:
                return False
            merged = {**dict(row), **allowed}
            _check_channel(
                provider=merged["provider"],
                profile=merged["profile"],
                base_url=merged["base_url"],
                models=merged["models"],
                weight=merged["weight"],
                status=merged["status"],
            )
            res = await conn.execute(
                update(channels).where(channels.c.id == channel_id).values(**allowed)
            )
            await self._bump(conn)
        return bool(res.rowcount)

    async def delete_channel(self, channel_id: int) -> bool:
        async with self.engine.begin() as conn:
            res = await conn.execute(delete(channels).where(channels.c.id == channel_id))
            await self._bump(conn)
        return bool(res.rowcount)

    def _channel(self, r: Any) -> ChannelRecord:
        return ChannelRecord(
            id=int(r["id"]),
            name=r["name"],
            provider=r["provider"],
            profile=r["profile"],
            base_url=r["base_url"],
            keys=tuple(self.secrets.decrypt_keys(r["keys_encrypted"])),
            models=tuple(r["models"] or ()),
            model_mapping=dict(r["model_mapping"] or {}),
            priority=int(r["priority"]),
            weight=int(r["weight"]),
            status=r["status"],
            config=dict(r["config"] or {}),
            is_emulator=bool(r["is_emulator"]),
            created_at=_aware(r["created_at"]) or _now(),
        )

    # ---- snapshot ---------------------------------------------------------
    async def snapshot(self) -> Snapshot:
        async with self.engine.connect() as conn:
            rev = await conn.scalar(select(revisions.c.value).where(revisions.c.name == "config"))
            urows = (await conn.execute(select(users))).mappings().all()
            krows = (await conn.execute(select(api_keys))).mappings().all()
            crows = (await conn.execute(select(channels).order_by(channels.c.id))).mappings().all()
        keys = {r["key_hash"]: _key(r) for r in krows}
        return Snapshot(
            revision=int(rev or 0),
            users={int(r["id"]): _user(r) for r in urows},
            keys=keys,
            channels=tuple(self._channel(r) for r in crows),
        )

    # ---- request logs (storage/request_logs.py) ----------------------------
    async def insert_request_logs(self, rows: Sequence[LogRow]) -> None:
        await insert_request_logs(self.engine, rows)

    async def list_request_logs(
        self, limit: int = 100, user_id: int | None = None
    ) -> list[dict[str, Any]]:
        return await list_request_logs(self.engine, limit, user_id)


def _check_channel(
    *, provider: str, profile: str, base_url: str, models: Any, weight: Any, status: str
) -> None:
    if provider not in PROVIDERS:
        raise ValueError(f"provider must be one of {', '.join(PROVIDERS)}")
    if provider == "openai_compat":
        get_profile(profile)  # raises ValueError naming the known profiles
    if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
        raise ValueError("base_url must start with http:// or https://")
    if not isinstance(models, list | tuple) or not models:
        raise ValueError("a channel needs at least one model")
    if not all(isinstance(m, str) and m for m in models):
        raise ValueError("models must be non-empty strings")
    if isinstance(weight, bool) or not isinstance(weight, int) or weight < 1:
        raise ValueError("weight must be an integer >= 1")
    if status not in ("enabled", "disabled"):
        raise ValueError("status must be 'enabled' or 'disabled'")


def _user(r: Any) -> UserRecord:
    return UserRecord(
        int(r["id"]), r["username"], r["role"], r["status"], _aware(r["created_at"]) or _now()
    )


def _key(r: Any) -> KeyRecord:
    models = r["models"]
    return KeyRecord(
        id=int(r["id"]),
        user_id=int(r["user_id"]),
        name=r["name"],
        kind=r["kind"],
        key_hash=r["key_hash"],
        key_hint=r["key_hint"],
        status=r["status"],
        expires_at=_aware(r["expires_at"]),
        models=frozenset(models) if models is not None else None,
        created_at=_aware(r["created_at"]) or _now(),
        rpm_limit=r.get("rpm_limit"),
        concurrency_limit=r.get("concurrency_limit"),
    )


def _limit(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError("limits must be positive integers or null")
    return value
