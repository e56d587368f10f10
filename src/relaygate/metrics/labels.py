"""Label values with bounded cardinality: model and channel names come from the
configuration (the catalog), never from what a client sent; error codes are cut to a
fixed alphabet and a fixed number of distinct values per worker."""

from __future__ import annotations

from relaygate.catalog import Catalog

__all__ = ["MAX_CODES", "OTHER", "UNKNOWN", "Labels"]

#: the model label of a request for a model no channel or route knows
UNKNOWN = "unknown"
#: the code label once a worker has seen MAX_CODES distinct codes
OTHER = "other"
MAX_CODES = 100
_CODE_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_.-")


class Labels:
    """Maps a request's model, channel id and error code to label values."""

    __slots__ = ("_catalog", "_channels", "_codes", "_revision")

    def __init__(self, catalog: Catalog) -> None:
        self._catalog = catalog
        self._revision = -1
        self._channels: dict[int, str] = {}
        self._codes: dict[str, str] = {"": ""}

    def model(self, name: str | None) -> str:
        """The public model asked for when the configuration knows it; ``unknown`` for a
        name it does not; ``""`` when the request never named one (refused before)."""
        if not name:
            return ""
        return name if self._catalog.is_known(name) else UNKNOWN

    def channel(self, channel_id: int | None) -> str:
        """The channel's configured name (``name#id`` when two channels share the name);
        ``""`` when no channel was chosen."""
        if channel_id is None:
            return ""
        if self._catalog.revision != self._revision:
            self._rebuild()
        name = self._channels.get(channel_id)
        return name if name is not None else f"#{channel_id}"

    def channels(self) -> dict[int, str]:
        """Every configured channel's label, by id."""
        if self._catalog.revision != self._revision:
            self._rebuild()
        return self._channels

    def _rebuild(self) -> None:
        channels = self._catalog.all_channels()
        seen: dict[str, int] = {}
        for c in channels:
            seen[c.name] = seen.get(c.name, 0) + 1
        self._channels = {
            c.id: (c.name if seen[c.name] == 1 and c.name else f"{c.name}#{c.id}") for c in channels
        }
        self._revision = self._catalog.revision

    def code(self, code: str | None) -> str:
        """An error code as a label: lower-case letters, digits and ``_.-`` only, at most 64
        characters; after :data:`MAX_CODES` distinct codes, new ones are ``other``."""
        if code is None:
            return ""
        label = self._codes.get(code)
        if label is not None:
            return label
        clean = code.lower()[:64]
        if not clean or not set(clean) <= _CODE_CHARS:
            clean = OTHER
        if len(self._codes) >= MAX_CODES:
            return clean if clean in self._codes.values() else OTHER
        self._codes[code] = clean
        return clean
