"""Upstream-key rotation per channel (round robin per worker)."""

from __future__ import annotations

from relaygate.storage.records import ChannelRecord

__all__ = ["KeyRotation"]


class KeyRotation:
    """Hands out a channel's upstream keys in turn. The cursors live here, not in
    the frozen channel records, and survive configuration reloads (by channel id)."""

    def __init__(self) -> None:
        self._cursor: dict[int, int] = {}

    def next(self, channel: ChannelRecord) -> str:
        keys = channel.keys
        if not keys:
            return ""
        n = self._cursor.get(channel.id, 0)
        self._cursor[channel.id] = n + 1
        return keys[n % len(keys)]
