"""Emulators of the web search APIs behind ``online`` search, answering from the built-in
corpus (``emulator/search_corpus.py``) in each API's documented shape, failures included:

* ``searxng``: ``GET /search`` (and ``/``) ``?q=…&format=json&language=…&time_range=…&pageno=…``
  → ``{query, number_of_results, results[{url, title, content, engine, score,
  publishedDate, …}], answers, suggestions, …}``. No key. The json format can be switched
  off (403 HTML page, as an instance without ``json`` in ``search.formats``); errors are
  HTML pages.
* ``tavily``: ``POST /search`` with ``Authorization: Bearer <key>`` (or ``api_key`` in the
  body) ``{query, max_results, search_depth, topic, time_range, days, include_domains, …}``
  → ``{query, answer, images, results[{title, url, content, score, raw_content}],
  response_time}`` (``published_date`` for ``topic: news``); errors
  ``{"detail": {"error": …}}`` (401, 400, 429, 432, 433, 5xx).
* ``bocha``: ``POST /v1/web-search`` with ``Authorization: Bearer <key>`` ``{query,
  freshness, summary, count, include}`` → ``{code: 200, log_id, msg, data: {webPages:
  {value[{name, url, snippet, summary, datePublished, …}]}}}``; errors ``{code: "401",
  message, log_id}`` with that HTTP status.
* ``google``: ``GET /customsearch/v1?key=…&cx=…&q=…&num=…`` (num 1..10, ``dateRestrict``,
  ``siteSearch``, ``lr``, ``start``) → ``{kind, queries, searchInformation, items[{title,
  link, snippet, pagemap}]}`` (no ``items`` when nothing matched); errors ``{"error":
  {code, message, errors[…], status}}``.

Shared behaviour (knobs, ``emulator/knobs.py``): ``api_key`` (None: any non-empty key),
``latency_ms`` (a slow answer), ``fail_status``/``fail_times``/``fail_every``/``fail_rate``
(the API's own error for that status), ``hang``, ``retry_after``; a query ``error-NNN``
answers that status, ``hang`` never answers. ``POST /_emulator/search`` with
``{"malformed": true}`` makes successful answers invalid JSON, ``{"json_format": false}``
turns SearXNG's json format off; ``GET`` shows both. The corpus and the shared base are in
``emulator/search_common.py``; Bocha and Google in ``emulator/search_apis.py``.
"""

from __future__ import annotations

import uuid
from typing import Any, ClassVar

from aiohttp import web

from relaygate.emulator.base import EarlyResponse, Provider
from relaygate.emulator.knobs import Knobs
from relaygate.emulator.search_apis import BochaEmulator, GooglePSEEmulator
from relaygate.emulator.search_common import WINDOWS, SearchEngine, corpus_search, split_sites

__all__ = [
    "SEARCH_EMULATORS",
    "BochaEmulator",
    "GooglePSEEmulator",
    "SearxngEmulator",
    "TavilyEmulator",
]


# ------------------------------------------------------------------------------------------
# SearXNG
# ------------------------------------------------------------------------------------------


class SearxngEmulator(SearchEngine):
    name: ClassVar[str] = "searxng"
    _TEXT: ClassVar[dict[int, str]] = {
        400: "Bad Request",
        403: "Forbidden",
        404: "Not Found",
        429: "Too Many Requests",
        500: "Internal Server Error",
        502: "Bad Gateway",
        503: "Service Unavailable",
    }

    def add_routes(self, app: web.Application) -> None:
        for path in ("/search", "/"):
            app.router.add_get(path, self.api(self.search))
        self.add_control(app)

    def error(
        self, status: int, message: str | None = None, *, param: str | None = None
    ) -> web.Response:
        reason = self._TEXT.get(status, "Error")
        page = (
            f"<!doctype html><html><head><title>{status} {reason}</title></head>"
            f"<body><h1>{reason}</h1><p>{message or reason}</p></body></html>"
        )
        return web.Response(status=status, text=page, content_type="text/html")

    def check_request(self, request: web.Request, knobs: Knobs) -> None:
        if request.query.get("format") == "json" and not self.json_format:
            raise EarlyResponse(self.error(403))

    async def search(self, request: web.Request, knobs: Knobs, body: Any) -> web.StreamResponse:
        q = request.query.get("q", "")
        await self.gate(knobs, q)
        if not q.strip():
            raise EarlyResponse(self.error(400, "No query"))
        time_range = request.query.get("time_range", "")
        if time_range not in ("", "None", "day", "week", "month", "year"):
            raise EarlyResponse(self.error(400, "Invalid time_range"))
        try:
            page = int(request.query.get("pageno", "1"))
        except ValueError:
            raise EarlyResponse(self.error(400, "Invalid pageno")) from None
        if page < 1:
            raise EarlyResponse(self.error(400, "Invalid pageno"))
        if request.query.get("format") != "json":
            return web.Response(text="<html><body>results</body></html>", content_type="text/html")
        text, sites = split_sites(q)
        found = corpus_search(
            text,
            sites=sites,
            max_age_days=WINDOWS.get(time_range),
            lang=request.query.get("language") or None,
        )
        shown = found[(page - 1) * 10 : page * 10]
        results = [
            {
                "url": doc.url,
                "title": doc.title,
                "content": doc.content,
                "engine": "emulated",
                "engines": ["emulated"],
                "parsed_url": ["https", doc.host, "/", "", "", ""],
                "template": "default.html",
                "positions": [i + 1],
                "score": round(score * 2, 4),
                "category": "general",
                "publishedDate": doc.published().replace(tzinfo=None).isoformat(),
            }
            for i, (doc, score) in enumerate(shown)
        ]
        payload = {
            "query": q,
            "number_of_results": len(found),
            "results": results,
            "answers": [],
            "corrections": [],
            "infoboxes": [],
            "suggestions": [],
            "unresponsive_engines": [],
        }
        return await self.answer(request, knobs, payload)


# ------------------------------------------------------------------------------------------
# Tavily
# ------------------------------------------------------------------------------------------


class TavilyEmulator(SearchEngine):
    name: ClassVar[str] = "tavily"
    _TEXT: ClassVar[dict[int, str]] = {
        400: "Bad Request",
        401: "Unauthorized: missing or invalid API key.",
        403: "Forbidden",
        404: "Not Found",
        429: "Your request has been blocked due to excessive requests. "
        "Please reduce rate of requests.",
        432: "This request exceeds your plan's set usage limit. Please upgrade your plan "
        "or contact support@tavily.com",
        433: "This request exceeds the pay-as-you-go limit. You can increase your limit "
        "on the Tavily dashboard.",
        500: "Internal Server Error",
    }

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/search", self.api(self.search))
        self.add_control(app)

    def error(
        self, status: int, message: str | None = None, *, param: str | None = None
    ) -> web.Response:
        text = message or self._TEXT.get(status, "Error")
        return self.json_response({"detail": {"error": text}}, status)

    def check_request(self, request: web.Request, knobs: Knobs) -> None:
        if not knobs.require_auth:
            return
        # a key in the body is checked in ``search`` (the body is read after this)
        if request.headers.get("Authorization") and not self.bearer_ok(request, knobs):
            raise EarlyResponse(self.error(401))

    async def search(self, request: web.Request, knobs: Knobs, body: Any) -> web.StreamResponse:
        if not isinstance(body, dict):
            raise EarlyResponse(self.error(400, "Invalid request body."))
        if knobs.require_auth and not self.bearer_ok(request, knobs, body.get("api_key")):
            raise EarlyResponse(self.error(401))
        query = body.get("query")
        if not isinstance(query, str) or not query.strip():
            raise EarlyResponse(self.error(400, "Query is missing."))
        await self.gate(knobs, query)
        k = body.get("max_results", 5)
        if not isinstance(k, int) or isinstance(k, bool) or not 0 <= k <= 20:
            raise EarlyResponse(self.error(400, "max_results must be between 0 and 20."))
        depth = body.get("search_depth", "basic")
        if depth not in ("basic", "advanced", "fast", "ultra-fast"):
            raise EarlyResponse(self.error(400, "Invalid search_depth."))
        topic = body.get("topic", "general")
        if topic not in ("general", "news", "finance"):
            raise EarlyResponse(self.error(400, "Invalid topic."))
        window = body.get("time_range")
        if window is not None and window not in WINDOWS:
            raise EarlyResponse(self.error(400, "Invalid time_range."))
        days = body.get("days")
        if days is not None and (not isinstance(days, int) or isinstance(days, bool) or days < 1):
            raise EarlyResponse(self.error(400, "days must be a positive integer."))
        sites = body.get("include_domains") or []
        if not isinstance(sites, list) or not all(isinstance(s, str) for s in sites):
            raise EarlyResponse(self.error(400, "include_domains must be a list of strings."))
        max_age = WINDOWS.get(window) if window else (days if topic == "news" else None)
        found = corpus_search(query, sites=tuple(s.lower() for s in sites), max_age_days=max_age)[
            :k
        ]
        results = []
        for doc, score in found:
            item: dict[str, Any] = {
                "title": doc.title,
                "url": doc.url,
                "content": doc.content,
                "score": score,
                "raw_content": doc.content if body.get("include_raw_content") else None,
            }
            if topic == "news":
                item["published_date"] = doc.published().strftime("%a, %d %b %Y %H:%M:%S GMT")
            results.append(item)
        payload = {
            "query": query,
            "follow_up_questions": None,
            "answer": None,
            "images": [],
            "results": results,
            "response_time": 0.01,
            "request_id": str(uuid.uuid4()),
        }
        return await self.answer(request, knobs, payload)


SEARCH_EMULATORS: tuple[type[Provider], ...] = (
    SearxngEmulator,
    TavilyEmulator,
    BochaEmulator,
    GooglePSEEmulator,
)
