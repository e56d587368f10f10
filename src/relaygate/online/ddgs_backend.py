"""DuckDuckGo (and the other engines the ``ddgs`` package scrapes) through ``DDGS().text``.

``ddgs`` is synchronous: each search runs in a small thread pool of its own, bounded by
the backend's timeout (``asyncio.wait_for``; a thread that overruns is left to finish in
the background, and ``ddgs``' own per-request timeout ends it soon after). It is a scraper:
expect rate limits and breakage; fine for development, weak as a service backend."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from relaygate.online.base import Hit, SearchFailed
from relaygate.online.http import map_hits, sanitize, site_query

__all__ = ["DdgsBackend", "TextSearch", "ddgs_region"]

#: ``(query, *, region, safesearch, timelimit, max_results, backend) -> [{title, href, body}]``
TextSearch = Callable[..., list[dict[str, Any]]]

_REGIONS = {
    "en": "us-en", "zh": "cn-zh", "zh-cn": "cn-zh", "zh-tw": "tw-tzh", "zh-hk": "hk-tzh",
    "de": "de-de", "fr": "fr-fr", "es": "es-es", "it": "it-it", "ja": "jp-jp", "ko": "kr-kr",
    "ru": "ru-ru", "pt": "br-pt", "nl": "nl-nl",
}  # fmt: skip
_TIMELIMIT = {"day": "d", "week": "w", "month": "m", "year": "y"}
_WORKERS = 4
NO_RESULTS = "No results found."  # ddgs' DDGSException text when no engine failed


def ddgs_region(lang: str | None) -> str:
    """ddgs' ``region`` for a language code (``wt-wt``: no region)."""
    if not lang:
        return "wt-wt"
    low = lang.strip().lower()
    return _REGIONS.get(low) or _REGIONS.get(low.split("-")[0], "wt-wt")


def _timelimit(days: int | None) -> str | None:
    if days is None or days <= 0:
        return None
    if days <= 1:
        return "d"
    if days <= 7:
        return "w"
    if days <= 31:
        return "m"
    return "y" if days <= 366 else None


class DdgsBackend:
    """``search_fn`` replaces ``DDGS(...).text`` (tests inject a stand-in through it);
    ``proxy``/``verify`` go to ``DDGS`` unchanged; ``engine`` is ddgs' ``backend``
    (``auto``, ``duckduckgo``, ``bing``, …)."""

    name = "ddgs"

    def __init__(
        self,
        *,
        timeout: float = 5.0,
        proxy: str | None = None,
        verify: bool | str = True,
        engine: str = "auto",
        safesearch: str = "moderate",
        search_fn: TextSearch | None = None,
    ) -> None:
        self.timeout = timeout
        self.engine = engine
        self.safesearch = safesearch
        self._proxy = proxy
        self._secrets = (proxy,) if proxy else ()
        self._pool = ThreadPoolExecutor(max_workers=_WORKERS, thread_name_prefix="ddgs")
        if search_fn is None:
            from ddgs import DDGS  # imported late: the package is only needed here

            client = DDGS(proxy=proxy, timeout=max(1, math.ceil(timeout)), verify=verify)
            search_fn = client.text
        self._search_fn = search_fn

    def _call(self, query: str, k: int, region: str, timelimit: str | None) -> list[dict[str, Any]]:
        return self._search_fn(
            query,
            region=region,
            safesearch=self.safesearch,
            timelimit=timelimit,
            max_results=k,
            backend=self.engine,
        )

    def _fail(self, message: str, kind: str = "error") -> SearchFailed:
        return SearchFailed(f"{self.name}: {sanitize(message, self._secrets)}", kind=kind)

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
        loop = asyncio.get_running_loop()
        job = loop.run_in_executor(
            self._pool, self._call, site_query(query, domains), k, ddgs_region(lang),
            _timelimit(recency_days),
        )  # fmt: skip
        try:
            rows = await asyncio.wait_for(job, self.timeout)
        except TimeoutError:
            raise self._fail(f"no answer within {self.timeout:g} s", "timeout") from None
        except Exception as exc:  # ddgs raises its own and primp's errors
            if type(exc).__name__ == "DDGSException" and str(exc) == NO_RESULTS:
                return []  # every engine answered, with nothing
            raise self._map_error(exc) from None
        if not isinstance(rows, list):
            raise self._fail("the search returned something that is not a list")
        return map_hits(
            rows, self.name, url="href", title="title", snippet="body", domains=domains, k=k
        )

    def _map_error(self, exc: Exception) -> SearchFailed:
        kind = type(exc).__name__
        text = str(exc)
        if kind == "TimeoutException" or isinstance(exc, TimeoutError):
            return self._fail(f"the engines did not answer in time ({kind})", "timeout")
        if kind == "RatelimitException":
            return self._fail("rate limited by the search engines")
        if "timed out" in text.lower():
            return self._fail(f"the engines did not answer in time ({kind})", "timeout")
        return self._fail(f"{kind}: {text}" if text else kind)

    async def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
