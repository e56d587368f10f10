"""Small helpers shared by the storage modules: the storage error and time handling."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

__all__ = ["Conflict", "aware", "columns", "now"]


class Conflict(ValueError):
    """A uniqueness or reference rule of the database would be broken
    (e.g. a duplicate username, a key for a user that does not exist)."""


def now() -> datetime:
    return datetime.now(UTC)


def aware(dt: datetime | None) -> datetime | None:
    """Datetimes read back from SQLite are naive; every stored time is UTC."""
    if dt is not None and dt.tzinfo is None:
        return dt.replace(tzinfo=UTC)
    return dt


def columns(fields: Mapping[str, Any], allowed: Iterable[str]) -> dict[str, Any]:
    """``fields`` as column values; a name that is not a writable column is a programming
    error (the service layer validates and names fields before storage sees them)."""
    names = set(allowed)
    unknown = sorted(set(fields) - names)
    if unknown:
        raise TypeError(f"not writable columns: {', '.join(unknown)}")
    return dict(fields)
