"""The content-safety tables: word lists (``safety_lists``), their words (``safety_words``)
and the audit of hits (``safety_audit``); docs/safety.md.

Stores what it is given: names, actions and words are validated by
``relaygate.services.safety`` and ``relaygate.safety.lists``. Every write of a list or of its
words bumps the ``config`` revision (every worker reloads its snapshot) and the ``safety``
revision (the word lists' own: a worker recompiles its policy only when that one changed) in
the same transaction. Audit rows are not configuration: they bump nothing.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from relaygate.storage import revisions
from relaygate.storage.base import Conflict, aware, columns, now
from relaygate.storage.tables import safety_audit, safety_lists, safety_words

__all__ = [
    "AUDIT_COLUMNS",
    "SAFETY_REVISION",
    "AuditQuery",
    "SafetyListRecord",
    "SafetyStore",
    "StoredWord",
]

#: the name of the word lists' own revision in the ``revisions`` table
SAFETY_REVISION = "safety"
WRITABLE = ("name", "category", "action", "groups", "enabled", "description")
#: an audit row is a tuple in this order (``safety/audit.py`` builds them)
AUDIT_COLUMNS = (
    "created_at",
    "request_id",
    "user_id",
    "key_id",
    "model",
    "list_id",
    "list_name",
    "category",
    "action",
    "word",
    "where",
    "excerpt",
)
_SLICE = 5000  # words per INSERT batch

#: one word as stored: (word, category or None, action or None) - None = the list's
StoredWord = tuple[str, str | None, str | None]


@dataclass(frozen=True, slots=True)
class SafetyListRecord:
    id: int
    name: str
    category: str
    action: str
    groups: tuple[str, ...] | None  # None = every group
    enabled: bool
    description: str
    created_at: datetime
    updated_at: datetime
    words: int = 0  # how many words it holds

    def to_public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "category": self.category,
            "action": self.action,
            "groups": list(self.groups) if self.groups is not None else None,
            "enabled": self.enabled,
            "description": self.description,
            "words": self.words,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
        }


@dataclass(frozen=True, slots=True)
class AuditQuery:
    """Filters of an audit page, newest first; ``before_id`` continues a page."""

    limit: int = 100
    before_id: int | None = None
    user_id: int | None = None
    list_id: int | None = None
    since: datetime | None = None
    until: datetime | None = None


def _record(r: Any, words: int = 0) -> SafetyListRecord:
    created = aware(r["created_at"]) or now()
    groups = r["groups"]
    return SafetyListRecord(
        id=int(r["id"]),
        name=r["name"],
        category=r["category"] or "",
        action=r["action"],
        groups=tuple(groups) if groups is not None else None,
        enabled=bool(r["enabled"]),
        description=r["description"] or "",
        created_at=created,
        updated_at=aware(r["updated_at"]) or created,
        words=words,
    )


_PG_WORDS = (
    "INSERT INTO safety_words (list_id, word, category, action) "
    "SELECT $1, w, c, a FROM unnest($2::varchar[], $3::varchar[], $4::varchar[]) AS t(w, c, a)"
)


async def _insert_words(conn: AsyncConnection, list_id: int, words: Sequence[StoredWord]) -> None:
    """Bulk insert: on PostgreSQL (asyncpg) one ``unnest`` statement per slice of 5,000
    words (100,000 words in about a second), elsewhere an ``executemany``."""
    pg = conn.dialect.name == "postgresql" and conn.dialect.driver == "asyncpg"
    for i in range(0, len(words), _SLICE):
        part = words[i : i + _SLICE]
        if pg:
            cols = ([w for w, _, _ in part], [c for _, c, _ in part], [a for _, _, a in part])
            await conn.exec_driver_sql(_PG_WORDS, (list_id, *cols))
        else:
            rows = [{"list_id": list_id, "word": w, "category": c, "action": a} for w, c, a in part]
            await conn.execute(insert(safety_words), rows)


async def _bump(conn: AsyncConnection) -> None:
    await revisions.bump(conn)
    await revisions.bump(conn, SAFETY_REVISION)


class SafetyStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    # ---- lists ---------------------------------------------------------------------
    async def create_list(
        self, fields: Mapping[str, Any], words: Sequence[StoredWord] = ()
    ) -> SafetyListRecord:
        """A new list holding ``words`` (validated, distinct), in one transaction. Raises
        :class:`Conflict` when a list of that name exists."""
        stamp = now()
        values = columns(fields, WRITABLE)
        values.update(created_at=stamp, updated_at=stamp)
        if values.get("groups") is not None:
            values["groups"] = list(values["groups"])
        try:
            async with self.engine.begin() as conn:
                res = await conn.execute(insert(safety_lists).values(**values))
                await _bump(conn)
                list_id = int(res.inserted_primary_key[0])  # type: ignore[index]
                await _insert_words(conn, list_id, words)
        except IntegrityError as exc:
            raise Conflict(f"a safety list named {values.get('name')!r} exists") from exc
        got = await self.get_list(list_id)
        assert got is not None
        return got

    async def get_list(self, list_id: int) -> SafetyListRecord | None:
        async with self.engine.connect() as conn:
            q = select(safety_lists).where(safety_lists.c.id == list_id)
            row = (await conn.execute(q)).mappings().first()
            if row is None:
                return None
            count = await conn.scalar(
                select(func.count())
                .select_from(safety_words)
                .where(safety_words.c.list_id == list_id)
            )
        return _record(row, int(count or 0))

    async def list_lists(self) -> builtins.list[SafetyListRecord]:
        async with self.engine.connect() as conn:
            rows = (await conn.execute(select(safety_lists).order_by(safety_lists.c.id))).mappings()
            counts_q = select(safety_words.c.list_id, func.count()).group_by(safety_words.c.list_id)
            counts = {int(k): int(v) for k, v in (await conn.execute(counts_q)).all()}
            return [_record(r, counts.get(int(r["id"]), 0)) for r in rows.all()]

    async def update_list(self, list_id: int, fields: Mapping[str, Any]) -> SafetyListRecord | None:
        """Write ``fields`` (any of ``WRITABLE``); None if there is no such list."""
        values = columns(fields, WRITABLE)
        if values.get("groups") is not None:
            values["groups"] = list(values["groups"])
        values["updated_at"] = now()
        try:
            async with self.engine.begin() as conn:
                res = await conn.execute(
                    update(safety_lists).where(safety_lists.c.id == list_id).values(**values)
                )
                if not res.rowcount:
                    return None
                await _bump(conn)
        except IntegrityError as exc:
            raise Conflict(f"a safety list named {values.get('name')!r} exists") from exc
        return await self.get_list(list_id)

    async def delete_list(self, list_id: int) -> bool:
        async with self.engine.begin() as conn:
            await conn.execute(delete(safety_words).where(safety_words.c.list_id == list_id))
            res = await conn.execute(delete(safety_lists).where(safety_lists.c.id == list_id))
            if res.rowcount:
                await _bump(conn)
        return bool(res.rowcount)

    # ---- words ---------------------------------------------------------------------
    async def add_words(
        self, list_id: int, words: Sequence[StoredWord], *, replace: bool = False
    ) -> tuple[int, int] | None:
        """Add ``words`` (validated, distinct) to the list in one transaction; with
        ``replace`` the list's words are these afterwards. Returns (added, already there),
        or None when there is no such list. Raises :class:`Conflict` when a concurrent
        write added one of the words (or removed the list) first: nothing is saved."""
        try:
            return await self._add_words(list_id, words, replace)
        except IntegrityError as exc:
            raise Conflict(
                "the list was changed by another write at the same time; nothing was saved, "
                "try again"
            ) from exc

    async def _add_words(
        self, list_id: int, words: Sequence[StoredWord], replace: bool
    ) -> tuple[int, int] | None:
        async with self.engine.begin() as conn:
            exists = await conn.scalar(
                select(safety_lists.c.id).where(safety_lists.c.id == list_id)
            )
            if exists is None:
                return None
            if replace:
                await conn.execute(delete(safety_words).where(safety_words.c.list_id == list_id))
                have: set[str] = set()
            else:
                q = select(safety_words.c.word).where(safety_words.c.list_id == list_id)
                have = set((await conn.scalars(q)).all())
            new = [entry for entry in words if entry[0] not in have]
            await _insert_words(conn, list_id, new)
            await conn.execute(
                update(safety_lists).where(safety_lists.c.id == list_id).values(updated_at=now())
            )
            await _bump(conn)
        return len(new), len(words) - len(new)

    async def remove_words(self, list_id: int, words: Iterable[str]) -> int | None:
        """Remove ``words`` from the list: how many were there (None: no such list)."""
        wanted = sorted(set(words))
        async with self.engine.begin() as conn:
            exists = await conn.scalar(
                select(safety_lists.c.id).where(safety_lists.c.id == list_id)
            )
            if exists is None:
                return None
            removed = 0
            for i in range(0, len(wanted), _SLICE):
                res = await conn.execute(
                    delete(safety_words).where(
                        safety_words.c.list_id == list_id,
                        safety_words.c.word.in_(wanted[i : i + _SLICE]),
                    )
                )
                removed += res.rowcount or 0
            if removed:
                await conn.execute(
                    update(safety_lists)
                    .where(safety_lists.c.id == list_id)
                    .values(updated_at=now())
                )
                await _bump(conn)
        return removed

    async def words(self, list_id: int) -> builtins.list[StoredWord]:
        """The list's words in the order they were added."""
        q = (
            select(safety_words.c.word, safety_words.c.category, safety_words.c.action)
            .where(safety_words.c.list_id == list_id)
            .order_by(safety_words.c.id)
        )
        async with self.engine.connect() as conn:
            return [(r[0], r[1], r[2]) for r in (await conn.execute(q)).all()]

    async def enabled_words(
        self,
    ) -> tuple[
        int, builtins.list[SafetyListRecord], builtins.list[tuple[int, str, str | None, str | None]]
    ]:
        """What the policy is compiled from, read in one transaction: the ``safety``
        revision, the enabled lists, and their words as (list id, word, category, action)."""
        async with self.engine.connect() as conn:
            rev = await revisions.current(conn, SAFETY_REVISION)
            q = select(safety_lists).where(safety_lists.c.enabled.is_(True))
            lists = [_record(r) for r in (await conn.execute(q)).mappings().all()]
            wq = (
                select(
                    safety_words.c.list_id,
                    safety_words.c.word,
                    safety_words.c.category,
                    safety_words.c.action,
                )
                .join(safety_lists, safety_lists.c.id == safety_words.c.list_id)
                .where(safety_lists.c.enabled.is_(True))
            )
            words = [(int(r[0]), r[1], r[2], r[3]) for r in (await conn.execute(wq)).all()]
        return rev, lists, words

    async def revision(self) -> int:
        async with self.engine.connect() as conn:
            return await revisions.current(conn, SAFETY_REVISION)

    # ---- audit ---------------------------------------------------------------------
    async def insert_audit(self, rows: Sequence[tuple[Any, ...]]) -> None:
        """Append audit rows (tuples in ``AUDIT_COLUMNS`` order) in one transaction."""
        if not rows:
            return
        values = [dict(zip(AUDIT_COLUMNS, r, strict=True)) for r in rows]
        async with self.engine.begin() as conn:
            await conn.execute(insert(safety_audit), values)

    async def list_audit(self, query: AuditQuery) -> builtins.list[dict[str, Any]]:
        c = safety_audit.c
        q = select(safety_audit).order_by(c.id.desc()).limit(query.limit)
        if query.before_id is not None:
            q = q.where(c.id < query.before_id)
        if query.user_id is not None:
            q = q.where(c.user_id == query.user_id)
        if query.list_id is not None:
            q = q.where(c.list_id == query.list_id)
        if query.since is not None:
            q = q.where(c.created_at >= query.since)
        if query.until is not None:
            q = q.where(c.created_at < query.until)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(q)).mappings().all()
        out = []
        for r in rows:
            row = {str(k): v for k, v in r.items()}  # plain str keys (a name may be quoted)
            row["created_at"] = (aware(row["created_at"]) or now()).isoformat()
            out.append(row)
        return out
