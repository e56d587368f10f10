"""Upstream-key rotation per channel (round robin per worker)."""

from __future__ import annotations

__all__ = ["KeyRotation"]


class KeyRotation:
    """Hands out a channel's upstream keys in turn. The cursors live here, not in
    the frozen channel records, and survive configuration reloads (by channel id)."""

    def __init__(self) -> None:
        self._cursor: dict[int, int] = {}

    def next_index(self, channel_id: int, n: int) -> int:
        """The index of the next of ``n`` keys of ``channel_id`` (n >= 1)."""
        i = self._cursor.get(channel_id, 0)
        self._cursor[channel_id] = i + 1
        return i % n
