"""Bocha (博查) web search: ``POST https://api.bochaai.com/v1/web-search`` with
``Authorization: Bearer <key>`` and ``{query, freshness, summary, count, include}``; the
pages are in ``data.webPages.value`` (a Bing-like shape). Errors are
``{"code": "401", "message": "Invalid API KEY", "log_id": …}`` with the same HTTP status."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from relaygate.online.base import Hit
from relaygate.online.http import JsonClient, map_hits

__all__ = ["BOCHA_URL", "BochaBackend", "freshness"]

BOCHA_URL = "https://api.bochaai.com"
MAX_COUNT = 50
MAX_SITES = 20  # the API's limit for include
_NAMED = {1: "oneDay", 7: "oneWeek", 30: "oneMonth", 31: "oneMonth", 365: "oneYear"}


def freshness(days: int | None, today: datetime | None = None) -> str:
    """Bocha's ``freshness``: a named window when one fits exactly, else a date range."""
    if days is None or days <= 0:
        return "noLimit"
    if days in _NAMED:
        return _NAMED[days]
    end = (today or datetime.now(UTC)).date()
    return f"{end - timedelta(days=days)}..{end}"


def _describe(status: int, body: Any) -> str:
    if isinstance(body, dict):
        for field in ("message", "msg"):
            if isinstance(body.get(field), str):
                return str(body[field])
    return {401: "invalid API key", 403: "not enough balance", 429: "rate limited"}.get(status, "")


def _published(item: dict[str, Any]) -> str | None:
    date = item.get("datePublished")
    if isinstance(date, str) and date:
        return date
    # documented quirk: dateLastCrawled is the publication time in UTC+8, marked "Z"
    crawled = item.get("dateLastCrawled")
    if isinstance(crawled, str) and crawled:
        return crawled[:-1] + "+08:00" if crawled.endswith("Z") else crawled
    return None


class BochaBackend:
    name = "bocha"

    def __init__(self, key: str, *, url: str = "", timeout: float = 5.0) -> None:
        if not key:
            raise ValueError("bocha needs an API key (RELAYGATE_SEARCH_KEY)")
        self.url = (url or BOCHA_URL).rstrip("/")
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
            "freshness": freshness(recency_days),
            "summary": True,
            "count": max(1, min(k, MAX_COUNT)),
        }
        if domains:
            body["include"] = "|".join(domains[:MAX_SITES])
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
            "POST", self.url + "/v1/web-search", json=self.payload(query, k, recency_days, domains)
        )
        if not isinstance(answer, dict):
            raise self._client.fail("the answer is not a JSON object")
        code = answer.get("code")
        if code is not None and str(code) != "200":  # an error told in a 200 answer
            status = int(code) if str(code).isdigit() else 502
            raise self._client.fail(f"code {code}: {_describe(status, answer)}", status=status)
        data = answer.get("data")
        pages = data.get("webPages") if isinstance(data, dict) else None
        if pages is None and isinstance(data, dict):
            return []  # no web pages for this query
        values = pages.get("value") if isinstance(pages, dict) else None
        if not isinstance(values, list):
            raise self._client.fail("the answer has no data.webPages.value list")
        return map_hits(
            values, self.name, url="url", title="name", snippet=("snippet", "summary"),
            published=_published, text="summary", domains=domains, k=k,
        )  # fmt: skip

    async def close(self) -> None:
        await self._client.close()
