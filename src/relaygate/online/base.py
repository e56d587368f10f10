"""What every search backend shares: a :class:`Hit`, the :class:`SearchBackend`
interface, :class:`SearchFailed`, and the operator's :class:`OnlineSettings`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

__all__ = ["Hit", "OnlineSettings", "SearchBackend", "SearchFailed"]


@dataclass(slots=True)
class Hit:
    """One search result. ``text`` is the longer page text when it was fetched (or the
    local index holds it); ``snippet`` is what the backend returned."""

    url: str
    title: str
    snippet: str
    source: str  # the backend's name: "searxng", "tavily", "local", …
    published: str | None = None  # ISO date when the backend gives one
    score: float | None = None  # the backend's own relevance, when it gives one
    text: str = ""


class SearchFailed(Exception):
    """A backend could not answer (timeout, HTTP error, bad body, refused key). The
    message is safe to show an operator (no keys); ``kind`` is ``timeout`` or ``error``."""

    def __init__(self, message: str, *, kind: str = "error") -> None:
        super().__init__(message)
        self.kind = kind


class SearchBackend(Protocol):
    name: str

    async def search(
        self,
        query: str,
        *,
        k: int,
        lang: str | None = None,
        recency_days: int | None = None,
        domains: tuple[str, ...] = (),
    ) -> list[Hit]:
        """Up to ``k`` hits for ``query``, best first; raises :class:`SearchFailed`.
        ``domains``: keep to these sites when the backend can."""
        ...

    async def close(self) -> None: ...


@dataclass(slots=True)
class OnlineSettings:
    """``RELAYGATE_SEARCH_*`` (docs/online.md)."""

    backend: str = "off"  # off | local | searxng | tavily | bocha | google | ddgs
    url: str = ""  # the backend's base URL (searxng: required; others: their API by default)
    key: str = ""  # API key (tavily, bocha, google)
    cx: str = ""  # Google Programmable Search engine id
    results: int = 5  # hits put before the conversation
    timeout: float = 5.0  # the whole search (query, backend, fetches) must finish in this
    fetch: bool = False  # fetch the hits' pages and extract their main text
    fetch_timeout: float = 3.0  # one page
    fetch_max_bytes: int = 2 * 1024 * 1024
    allow_private: bool = False  # let fetches reach private and loopback addresses
    budget_tokens: int = 3000  # the sources' share of the prompt
    notice: bool = True  # seed 001's two stream notice chunks
    always: tuple[str, ...] = ()  # models that are always online
    rewrite_model: str = ""  # a small model that turns the conversation into a query
    local_db: str = ""  # the local index's SQLite file (default: data_dir/search.db)
    extra: dict[str, str] = field(default_factory=dict)
