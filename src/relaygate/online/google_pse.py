"""Google Programmable Search (Custom Search JSON API):
``GET https://www.googleapis.com/customsearch/v1?key=…&cx=…&q=…&num=…`` (``num`` at most
10); hits in ``items[{title, link, snippet, pagemap}]`` (no ``items`` when nothing matched).
Errors are ``{"error": {"code", "message", "errors": […], "status"}}``. The key travels in
the query string, so no message ever quotes the URL."""

from __future__ import annotations

from typing import Any

from relaygate.online.base import Hit
from relaygate.online.http import JsonClient, map_hits, site_query

__all__ = ["GOOGLE_URL", "GooglePSEBackend", "google_lr"]

GOOGLE_URL = "https://www.googleapis.com"
MAX_NUM = 10
_LR_SPECIAL = {
    "zh": "lang_zh-CN",
    "zh-cn": "lang_zh-CN",
    "zh-hans": "lang_zh-CN",
    "zh-tw": "lang_zh-TW",
    "zh-hk": "lang_zh-TW",
    "zh-hant": "lang_zh-TW",
}


def google_lr(lang: str) -> str:
    """Google's ``lr`` value for a language code (``en`` → ``lang_en``)."""
    low = lang.strip().lower()
    return _LR_SPECIAL.get(low) or "lang_" + low.split("-")[0]


def _describe(status: int, body: Any) -> str:
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        err = body["error"]
        message = err.get("message") if isinstance(err.get("message"), str) else ""
        state = err.get("status") if isinstance(err.get("status"), str) else ""
        return f"{state}: {message}" if state and message else str(message or state)
    return ""


def _published(item: dict[str, Any]) -> str | None:
    pagemap = item.get("pagemap")
    tags = pagemap.get("metatags") if isinstance(pagemap, dict) else None
    if isinstance(tags, list) and tags and isinstance(tags[0], dict):
        for name in ("article:published_time", "og:updated_time", "date"):
            value = tags[0].get(name)
            if isinstance(value, str) and value:
                return value
    return None


class GooglePSEBackend:
    name = "google"

    def __init__(self, key: str, cx: str, *, url: str = "", timeout: float = 5.0) -> None:
        if not key:
            raise ValueError("google needs an API key (RELAYGATE_SEARCH_KEY)")
        if not cx:
            raise ValueError("google needs a search engine id (RELAYGATE_SEARCH_CX)")
        self.url = (url or GOOGLE_URL).rstrip("/")
        self._key = key
        self._cx = cx
        self._client = JsonClient(self.name, timeout=timeout, secrets=(key,), describe=_describe)

    def params(
        self,
        query: str,
        k: int,
        lang: str | None,
        recency_days: int | None,
        domains: tuple[str, ...],
    ) -> dict[str, str]:
        params = {"key": self._key, "cx": self._cx, "num": str(max(1, min(k, MAX_NUM)))}
        if len(domains) == 1:
            params["q"] = query
            params["siteSearch"] = domains[0]
            params["siteSearchFilter"] = "i"
        else:
            params["q"] = site_query(query, domains)
        if recency_days is not None and recency_days > 0:
            params["dateRestrict"] = f"d{recency_days}"
        if lang:
            params["lr"] = google_lr(lang)
        return params

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
            "GET",
            self.url + "/customsearch/v1",
            params=self.params(query, k, lang, recency_days, domains),
        )
        if not isinstance(answer, dict):
            raise self._client.fail("the answer is not a JSON object")
        items = answer.get("items", [])
        if not isinstance(items, list):
            raise self._client.fail("the answer's items is not a list")
        return map_hits(
            items, self.name, url="link", title="title", snippet="snippet",
            published=_published, domains=domains, k=k,
        )  # fmt: skip

    async def close(self) -> None:
        await self._client.close()
