"""Tavily: ``POST https://api.tavily.com/search`` with ``Authorization: Bearer <key>``.

Our own aiohttp client rather than ``tavily-python``: that package's async client is built
on httpx (not a runtime dependency here) and opens a new client for every call, and its
exceptions carry Tavily's words only; ours keeps one session, the gateway's timeout and
the same :class:`SearchFailed` contract as every other backend."""

from __future__ import annotations

from typing import Any

from relaygate.online.base import Hit, SearchFailed
from relaygate.online.http import JsonClient, map_hits, recency_window

__all__ = ["TAVILY_URL", "TavilyBackend"]

TAVILY_URL = "https://api.tavily.com"
MAX_RESULTS = 20  # the API's upper bound for max_results


def _describe(status: int, body: Any) -> str:
    """Tavily's errors are ``{"detail": {"error": "…"}}`` (432/433: plan limits)."""
    if isinstance(body, dict):
        detail = body.get("detail")
        if isinstance(detail, dict) and isinstance(detail.get("error"), str):
            return str(detail["error"])
        if isinstance(detail, str):
            return detail
    return {
        401: "missing or invalid API key",
        429: "rate limited",
        432: "plan usage limit exceeded",
        433: "pay-as-you-go limit exceeded",
    }.get(status, "")


class TavilyBackend:
    name = "tavily"

    def __init__(
        self, key: str, *, url: str = "", timeout: float = 5.0, search_depth: str = "basic"
    ) -> None:
        if not key:
            raise ValueError("tavily needs an API key (RELAYGATE_SEARCH_KEY)")
        self.url = (url or TAVILY_URL).rstrip("/")
        self.search_depth = search_depth
        self._client = JsonClient(
            self.name,
            timeout=timeout,
            headers={"Authorization": f"Bearer {key}"},
            secrets=(key,),
            describe=_describe,
        )

    def payload(
        self, query: str, k: int, recency_days: int | None, domains: tuple[str, ...]
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "query": query,
            "max_results": max(1, min(k, MAX_RESULTS)),
            "search_depth": self.search_depth,
            "topic": "general",
            "include_answer": False,
            "include_raw_content": False,
        }
        if domains:
            body["include_domains"] = list(domains)
        window = recency_window(recency_days)
        if window:
            body["time_range"] = window
        return body

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
        answer = await self._client.request(
            "POST", self.url + "/search", json=self.payload(query, k, recency_days, domains)
        )
        results = answer.get("results") if isinstance(answer, dict) else None
        if not isinstance(results, list):
            raise SearchFailed(f"{self.name}: the answer has no results list")
        return map_hits(
            results, self.name, url="url", title="title", snippet="content",
            published="published_date", score="score", domains=domains, k=k,
        )  # fmt: skip

    async def close(self) -> None:
        await self._client.close()
