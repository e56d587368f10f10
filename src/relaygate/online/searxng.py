"""SearXNG through its JSON API: ``GET {url}/search?q=…&format=json`` (the ``json`` format
must be listed in the instance's ``search.formats``; otherwise it answers 403)."""

from __future__ import annotations

from typing import Any

from relaygate.online.base import Hit, SearchFailed
from relaygate.online.http import JsonClient, map_hits, recency_window
from relaygate.online.http import site_query as _site_query

__all__ = ["SearxngBackend"]


def _describe(status: int, body: Any) -> str:
    if status == 403:
        return "forbidden: is the json format enabled (search.formats in settings.yml)?"
    if status == 429:
        return "rate limited by the instance's limiter"
    return ""


class SearxngBackend:
    """A SearXNG instance at ``url`` (no key: SearXNG has none)."""

    name = "searxng"

    def __init__(self, url: str, *, timeout: float = 5.0) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError("the SearXNG URL must start with http:// or https://")
        self.url = url.rstrip("/")
        self._client = JsonClient(self.name, timeout=timeout, describe=_describe)

    async def search(
        self,
        query: str,
        *,
        k: int,
        lang: str | None = None,
        recency_days: int | None = None,
        domains: tuple[str, ...] = (),
    ) -> list[Hit]:
        if not query.strip() or k <= 0:
            return []
        params = {"q": _site_query(query, domains), "format": "json", "pageno": "1"}
        if lang:
            params["language"] = lang
        window = recency_window(recency_days)
        if window:
            params["time_range"] = window
        body = await self._client.request("GET", self.url + "/search", params=params)
        results = body.get("results") if isinstance(body, dict) else None
        if not isinstance(results, list):
            raise SearchFailed(f"{self.name}: the answer has no results list")
        return map_hits(
            results, self.name, url="url", title="title", snippet="content",
            published="publishedDate", score="score", domains=domains, k=k,
        )  # fmt: skip

    async def close(self) -> None:
        await self._client.close()
