"""Revisions: the ``config`` revision is bumped in the same transaction as every configuration
write, and read by every worker to know when to reload its snapshot (see ``relaygate.catalog``);
other names (``safety``, ``billing``) version their own data the same way.

Every worker polls the ``config`` value every ``RELAYGATE_REFRESH_INTERVAL`` seconds. With
Redis, a bump is also announced the moment its transaction commits: :func:`on_bump` listeners
(``sharedstate/broadcast.py`` publishes on the ``<prefix>config`` channel) are called with the
revision's name and new value after the commit, never for a transaction rolled back.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import event, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from relaygate.storage.tables import revisions

__all__ = ["bump", "current", "on_bump"]

#: called with (name, new value) once a transaction that bumped a revision commits
_listeners: list[Callable[[str, int], None]] = []


def on_bump(listener: Callable[[str, int], None]) -> Callable[[], None]:
    """Call ``listener(name, value)`` after every committed bump made by this process (it
    must not block: it runs inside the commit). Returns a function that removes it."""
    _listeners.append(listener)

    def remove() -> None:
        if listener in _listeners:
            _listeners.remove(listener)

    return remove


async def bump(conn: AsyncConnection, name: str = "config") -> None:
    res = await conn.execute(
        update(revisions).where(revisions.c.name == name).values(value=revisions.c.value + 1)
    )
    if res.rowcount == 0:
        await conn.execute(insert(revisions).values(name=name, value=1))
    if _listeners:  # the row is locked by the update: this is our own new value
        announced = await current(conn, name)

        def committed(_conn: Any) -> None:
            for listener in list(_listeners):
                listener(name, announced)

        event.listen(conn.sync_connection, "commit", committed, once=True)


async def current(conn: AsyncConnection, name: str = "config") -> int:
    value = await conn.scalar(select(revisions.c.value).where(revisions.c.name == name))
    return int(value or 0)
