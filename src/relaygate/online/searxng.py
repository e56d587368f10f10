"""SearXNG through its JSON API: ``GET {url}/search?q=…&format=json`` (the ``json`` format
must be listed in the instance's ``search.formats``; otherwise it answers 403)."""

from __future__ import annotations

from typing import Any

from relaygate.online.base import Hit, SearchFailed
from relaygate.online.http import JsonClient, as_float, clean, keep_domains, recency_window
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
        hits: list[Hit] = []
        for item in results:
            if not isinstance(item, dict):
                continue
            url = item.get("url")
            if not isinstance(url, str) or not url.startswith(("http://", "https://")):
                continue
            published = item.get("publishedDate")
            hits.append(
                Hit(
                    url=url,
                    title=clean(item.get("title")) or url,
                    snippet=clean(item.get("content")),
                    source=self.name,
                    published=published if isinstance(published, str) and published else None,
                    score=as_float(item.get("score")),
                )
            )
        return keep_domains(hits, domains)[:k]

    async def close(self) -> None:
        await self._client.close()
