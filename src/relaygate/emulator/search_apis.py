"""Emulators of the Bocha (博查) web search API and Google Programmable Search (Custom
Search JSON API); see ``emulator/search_engines.py`` for the shapes and the knobs."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from aiohttp import web

from relaygate.emulator.base import EarlyResponse
from relaygate.emulator.knobs import Knobs
from relaygate.emulator.search_common import SearchEngine, corpus_search, split_sites

__all__ = ["BochaEmulator", "GooglePSEEmulator"]

# ------------------------------------------------------------------------------------------
# Bocha
# ------------------------------------------------------------------------------------------

_FRESH_NAMED = {"noLimit": None, "oneDay": 1, "oneWeek": 7, "oneMonth": 31, "oneYear": 366}
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _bocha_window(fresh: str) -> tuple[int | None, datetime | None, datetime | None] | None:
    """(max age in days, since, until) for a freshness value; None when it is invalid."""
    for name, days in _FRESH_NAMED.items():
        if fresh.lower() == name.lower():
            return days, None, None
    lo, sep, hi = fresh.partition("..")
    if not _DAY.match(lo) or (sep and not _DAY.match(hi)):
        return None
    try:
        since = datetime.fromisoformat(lo).replace(tzinfo=UTC)
        until = datetime.fromisoformat(hi if sep else lo).replace(tzinfo=UTC)
    except ValueError:
        return None
    return None, since, until + timedelta(days=1)


class BochaEmulator(SearchEngine):
    name: ClassVar[str] = "bocha"
    _TEXT: ClassVar[dict[int, str]] = {
        400: "Missing parameter query",
        401: "Invalid API KEY",
        403: "You do not have enough money",
        404: "Not Found",
        429: "You have reached the request limit",
        500: "Internal server error",
    }

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/web-search", self.api(self.search))
        self.add_control(app)

    def error(
        self, status: int, message: str | None = None, *, param: str | None = None
    ) -> web.Response:
        text = message or self._TEXT.get(status, "xxxx")
        body = {"code": str(status), "message": text, "log_id": self.core.ids("")[:16]}
        return self.json_response(body, status)

    def check_request(self, request: web.Request, knobs: Knobs) -> None:
        if not knobs.require_auth:
            return
        ok = self.bearer_ok(request, knobs)
        if ok is None:
            raise EarlyResponse(self.error(400, "The API KEY is missing"))
        if not ok:
            raise EarlyResponse(self.error(401))

    async def search(self, request: web.Request, knobs: Knobs, body: Any) -> web.StreamResponse:
        if not isinstance(body, dict):
            raise EarlyResponse(self.error(400, "Invalid request body"))
        query = body.get("query")
        if not isinstance(query, str) or not query.strip():
            raise EarlyResponse(self.error(400, "Missing parameter query"))
        await self.gate(knobs, query)
        count = body.get("count", 10)
        if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= 50:
            raise EarlyResponse(self.error(400, "count must be between 1 and 50"))
        fresh = body.get("freshness", "noLimit")
        window = _bocha_window(fresh) if isinstance(fresh, str) else None
        if window is None:
            raise EarlyResponse(self.error(400, "Invalid parameter freshness"))
        include = body.get("include", "")
        if not isinstance(include, str):
            raise EarlyResponse(self.error(400, "Invalid parameter include"))
        sites = tuple(s.strip().lower() for s in re.split(r"[|,]", include) if s.strip())
        max_age, since, until = window
        found = corpus_search(query, sites=sites, max_age_days=max_age, since=since, until=until)
        values = []
        for doc, _score in found[:count]:
            date = doc.published()
            beijing = (date + timedelta(hours=8)).replace(tzinfo=None)
            item: dict[str, Any] = {
                "id": None,
                "name": doc.title,
                "url": doc.url,
                "displayUrl": doc.url,
                "snippet": doc.content[:80],
                "siteName": doc.host,
                "siteIcon": f"https://th.bochaai.com/favicon?domain_url={doc.url}",
                "datePublished": beijing.isoformat() + "+08:00",
                "dateLastCrawled": beijing.isoformat() + "Z",  # the documented quirk
                "cachedPageUrl": None,
                "language": None,
                "isFamilyFriendly": None,
                "isNavigational": None,
            }
            if body.get("summary") is True:
                item["summary"] = doc.content
            values.append(item)
        payload = {
            "code": 200,
            "log_id": self.core.ids("")[:16],
            "msg": None,
            "data": {
                "_type": "SearchResponse",
                "queryContext": {"originalQuery": query},
                "webPages": {
                    "webSearchUrl": "",
                    "totalEstimatedMatches": len(found),
                    "value": values,
                    "someResultsRemoved": False,
                },
                "images": None,
                "videos": None,
            },
        }
        return await self.answer(request, knobs, payload)


# ------------------------------------------------------------------------------------------
# Google Programmable Search
# ------------------------------------------------------------------------------------------

_INVALID = "Request contains an invalid argument."
_DATE_RESTRICT = re.compile(r"^([dwmy])(\d+)$")
_UNIT_DAYS = {"d": 1, "w": 7, "m": 31, "y": 366}


class GooglePSEEmulator(SearchEngine):
    name: ClassVar[str] = "google"
    _STATUS: ClassVar[dict[int, tuple[str, str, str]]] = {
        400: ("INVALID_ARGUMENT", "badRequest", _INVALID),
        403: ("PERMISSION_DENIED", "forbidden", "The caller does not have permission"),
        404: ("NOT_FOUND", "notFound", "Requested entity was not found."),
        429: (
            "RESOURCE_EXHAUSTED",
            "rateLimitExceeded",
            "Quota exceeded for quota metric 'Queries' and limit 'Queries per day' of "
            "service 'customsearch.googleapis.com' for consumer 'project_number:0'.",
        ),
        500: ("INTERNAL", "backendError", "Internal error encountered."),
        503: ("UNAVAILABLE", "backendError", "The service is currently unavailable."),
    }

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/customsearch/v1", self.api(self.search))
        self.add_control(app)

    def error(
        self, status: int, message: str | None = None, *, param: str | None = None
    ) -> web.Response:
        state, reason, text = self._STATUS.get(status, ("UNKNOWN", "unknown", "Unknown error."))
        message = message or text
        body = {
            "error": {
                "code": status,
                "message": message,
                "errors": [{"message": message, "domain": "global", "reason": reason}],
                "status": state,
            }
        }
        return self.json_response(body, status)

    def check_request(self, request: web.Request, knobs: Knobs) -> None:
        if not knobs.require_auth:
            return
        key = request.query.get("key", "")
        if not key:
            raise EarlyResponse(
                self.error(
                    403,
                    "Method doesn't allow unregistered callers (callers without established "
                    "identity). Please use API Key or other form of API consumer identity "
                    "to call this API.",
                )
            )
        if knobs.api_key is not None and key != knobs.api_key:
            raise EarlyResponse(self.error(400, "API key not valid. Please pass a valid API key."))

    async def search(self, request: web.Request, knobs: Knobs, body: Any) -> web.StreamResponse:
        query = request.query
        q = query.get("q", "")
        if not query.get("cx") or not q.strip():
            raise EarlyResponse(self.error(400))
        await self.gate(knobs, q)
        try:
            num = int(query.get("num", "10"))
            start = int(query.get("start", "1"))
        except ValueError:
            raise EarlyResponse(self.error(400)) from None
        if not 1 <= num <= 10 or not 1 <= start <= 100:
            raise EarlyResponse(self.error(400))
        max_age = None
        if "dateRestrict" in query:
            m = _DATE_RESTRICT.match(query["dateRestrict"])
            if not m:
                raise EarlyResponse(self.error(400))
            max_age = _UNIT_DAYS[m.group(1)] * int(m.group(2))
        text, sites = split_sites(q)
        site = query.get("siteSearch", "").lower()
        if site and query.get("siteSearchFilter", "i") == "i":
            sites = (*sites, site)
        lr = query.get("lr", "")
        lang = lr[5:] if lr.startswith("lang_") else None
        found = corpus_search(text, sites=sites, max_age_days=max_age, lang=lang)
        shown = found[start - 1 : start - 1 + num]
        payload: dict[str, Any] = {
            "kind": "customsearch#search",
            "url": {
                "type": "application/json",
                "template": "https://www.googleapis.com/customsearch/v1?q={searchTerms}&…",
            },
            "queries": {
                "request": [
                    {
                        "title": "Google Custom Search - " + q,
                        "totalResults": str(len(found)),
                        "searchTerms": q,
                        "count": len(shown),
                        "startIndex": start,
                        "cx": query["cx"],
                    }
                ]
            },
            "context": {"title": "relaygate emulator"},
            "searchInformation": {
                "searchTime": 0.01,
                "formattedSearchTime": "0.01",
                "totalResults": str(len(found)),
                "formattedTotalResults": str(len(found)),
            },
        }
        if shown:
            payload["items"] = [
                {
                    "kind": "customsearch#result",
                    "title": doc.title,
                    "htmlTitle": doc.title,
                    "link": doc.url,
                    "displayLink": doc.host,
                    "snippet": doc.content[:160],
                    "htmlSnippet": doc.content[:160],
                    "formattedUrl": doc.url,
                    "pagemap": {
                        "metatags": [{"article:published_time": doc.published().isoformat()}]
                    },
                }
                for doc, _score in shown
            ]
        return await self.answer(request, knobs, payload)
