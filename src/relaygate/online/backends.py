"""Choosing the search backend from the operator's settings: :func:`make_backend`."""

from __future__ import annotations

from pathlib import Path

from relaygate.online.base import OnlineSettings, SearchBackend

__all__ = ["BACKENDS", "make_backend"]

#: every value ``RELAYGATE_SEARCH_BACKEND`` takes
BACKENDS = ("off", "local", "searxng", "tavily", "bocha", "google", "ddgs")


def _url(settings: OnlineSettings, *, required: bool) -> str:
    url = settings.url.strip()
    if not url:
        if required:
            raise ValueError(
                f"search backend {settings.backend!r} needs RELAYGATE_SEARCH_URL "
                "(the instance's base URL, e.g. http://127.0.0.1:8888)"
            )
        return ""
    if not url.startswith(("http://", "https://")):
        raise ValueError("RELAYGATE_SEARCH_URL must start with http:// or https://")
    return url


def _key(settings: OnlineSettings) -> str:
    key = settings.key.strip()
    if not key:
        raise ValueError(f"search backend {settings.backend!r} needs RELAYGATE_SEARCH_KEY")
    return key


def make_backend(settings: OnlineSettings, data_dir: Path) -> SearchBackend | None:
    """The backend ``settings.backend`` names (None for ``off``); ValueError when the name
    is unknown or its URL, key or engine id is missing."""
    name = settings.backend.strip().lower()
    timeout = settings.timeout if settings.timeout > 0 else 5.0
    if name in ("off", ""):
        return None
    if name == "local":
        from relaygate.online.local_index import LocalIndex

        return LocalIndex(settings.local_db or Path(data_dir) / "search.db")
    if name == "searxng":
        from relaygate.online.searxng import SearxngBackend

        return SearxngBackend(_url(settings, required=True), timeout=timeout)
    if name == "tavily":
        from relaygate.online.tavily import TavilyBackend

        return TavilyBackend(
            _key(settings),
            url=_url(settings, required=False),
            timeout=timeout,
            search_depth=settings.extra.get("tavily_depth", "basic"),
        )
    if name == "bocha":
        from relaygate.online.bocha import BochaBackend

        return BochaBackend(_key(settings), url=_url(settings, required=False), timeout=timeout)
    if name == "google":
        from relaygate.online.google_pse import GooglePSEBackend

        key = _key(settings)
        if not settings.cx.strip():
            raise ValueError(
                "search backend 'google' needs RELAYGATE_SEARCH_CX (the Programmable "
                "Search engine id)"
            )
        return GooglePSEBackend(
            key, settings.cx.strip(), url=_url(settings, required=False), timeout=timeout
        )
    if name == "ddgs":
        try:
            from relaygate.online.ddgs_backend import DdgsBackend

            return DdgsBackend(
                timeout=timeout,
                proxy=settings.extra.get("ddgs_proxy") or None,
                engine=settings.extra.get("ddgs_backend", "auto"),
            )
        except ImportError:
            raise ValueError("search backend 'ddgs' needs the ddgs package") from None
    raise ValueError(
        f"unknown search backend {settings.backend!r} (choose from {', '.join(BACKENDS)})"
    )
