"""What the search-engine emulators share: :class:`SearchEngine` (their ``Provider`` base:
the ``/_emulator/search`` control, the malformed-answer switch, bearer keys), the small
built-in corpus they answer from, and its matching (:func:`corpus_search`): the same query
always gives the same hits, in the same order.

A document's date is relative to today (``age_days``), so recency filters give stable
answers whatever the day. ``site:`` operators in a query restrict the hosts, as the real
engines do.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from relaygate.emulator.base import Provider
from relaygate.emulator.knobs import Knobs

__all__ = [
    "CORPUS",
    "WINDOWS",
    "CorpusDoc",
    "SearchEngine",
    "corpus_search",
    "split_sites",
]


@dataclass(frozen=True, slots=True)
class CorpusDoc:
    url: str
    title: str
    content: str
    age_days: int  # published this many days before today
    lang: str = "en"

    @property
    def host(self) -> str:
        return (urlsplit(self.url).hostname or "").lower()

    def published(self, now: datetime | None = None) -> datetime:
        base = (now or datetime.now(UTC)).replace(hour=8, minute=0, second=0, microsecond=0)
        return base - timedelta(days=self.age_days)


CORPUS: tuple[CorpusDoc, ...] = (
    CorpusDoc(
        "https://relaygate.example.org/docs/online",
        "Online search in relaygate",
        "relaygate searches the web for online requests and cites its sources as "
        "url_citation annotations. Backends: SearXNG, Tavily, Bocha, Google, ddgs, local.",
        2,
    ),
    CorpusDoc(
        "https://relaygate.example.org/docs/routing",
        "Routing channels by priority and weight",
        "The router orders channels by priority tiers, then by weight inside a tier; "
        "circuits keep failing channels aside.",
        40,
    ),
    CorpusDoc(
        "https://news.example.com/2026/llm-gateways",
        "LLM gateways compared",
        "An LLM gateway relays OpenAI-compatible requests to many providers, with keys, "
        "quotas, routing and billing in one place.",
        5,
    ),
    CorpusDoc(
        "https://blog.example.net/python-asyncio-timeouts",
        "Timeouts with Python asyncio",
        "asyncio.timeout and wait_for bound how long a coroutine may run; a search "
        "backend should always run under a deadline.",
        200,
    ),
    CorpusDoc(
        "https://wiki.example.org/SQLite_FTS5",
        "SQLite FTS5 full-text search",
        "FTS5 is SQLite's full-text search extension, with bm25 ranking, snippet() and "
        "the unicode61 and trigram tokenizers.",
        900,
    ),
    CorpusDoc(
        "https://weather.example.com/florence",
        "Florence weather today",
        "Sunny in Florence today, 18 degrees; light wind from the north in the evening.",
        0,
    ),
    CorpusDoc(
        "https://zh.example.cn/gateway",
        "大模型网关简介",
        "大模型网关把兼容 OpenAI 的请求转发给多个上游服务商，统一管理密钥、额度、路由和计费。",
        3,
        "zh",
    ),
    CorpusDoc(
        "https://zh.example.cn/search",
        "联网搜索与引用",
        "联网搜索先检索网页，再把编号的来源放进提示词，回答时引用来源编号。",
        20,
        "zh",
    ),
    CorpusDoc(
        "https://docs.example.io/search-apis",
        "Web search APIs for LLM applications",
        "Search APIs such as Tavily, Bocha and Google Programmable Search return titles, "
        "links and snippets that an LLM can cite.",
        60,
    ),
)

_SITE = re.compile(r"\(?\bsite:([^\s()]+)\)?", re.I)
_OR = re.compile(r"\(\s*(?:OR\s*)*\)|\bOR\b")
_WORD = re.compile(r"[a-z0-9]+")
_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]+")


def split_sites(query: str) -> tuple[str, tuple[str, ...]]:
    """``query`` without its ``site:`` operators, and the sites they named."""
    sites = tuple(m.group(1).lower().strip(".") for m in _SITE.finditer(query))
    if not sites:
        return query.strip(), ()
    rest = _SITE.sub(" ", query)
    rest = _OR.sub(" ", rest) if len(sites) > 1 else rest
    return " ".join(rest.split()), sites


def _terms(query: str) -> list[str]:
    low = query.lower()
    terms = _WORD.findall(low)
    for run in _CJK.findall(low):
        terms += [run[i : i + 2] for i in range(len(run) - 1)] if len(run) > 1 else [run]
    return terms


def _on(host: str, sites: tuple[str, ...]) -> bool:
    return any(host == s or host.endswith("." + s) for s in sites)


def corpus_search(
    query: str,
    *,
    sites: tuple[str, ...] = (),
    max_age_days: int | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    lang: str | None = None,
    now: datetime | None = None,
) -> list[tuple[CorpusDoc, float]]:
    """The documents matching ``query`` (any term, title counted twice), best first, each
    with a score in (0, 1]."""
    terms = _terms(query)
    if not terms:
        return []
    now = now or datetime.now(UTC)
    scored: list[tuple[CorpusDoc, int]] = []
    for doc in CORPUS:
        if sites and not _on(doc.host, sites):
            continue
        if max_age_days is not None and doc.age_days > max_age_days:
            continue
        published = doc.published(now)
        if since is not None and published < since:
            continue
        if until is not None and published > until:
            continue
        if (
            lang
            and lang.lower() not in ("all", "auto")
            and not doc.lang.startswith(lang.lower().split("-")[0])
        ):
            continue
        title, content = doc.title.lower(), doc.content.lower()
        score = sum(2 * title.count(t) + content.count(t) for t in terms)
        if score:
            scored.append((doc, score))
    scored.sort(key=lambda p: (-p[1], p[0].url))
    top = scored[0][1] if scored else 1
    return [(doc, round(s / top, 4)) for doc, s in scored]


_MALFORMED = b'{"results": [{"url": "https://truncated.example'
WINDOWS = {"day": 1, "d": 1, "week": 7, "w": 7, "month": 31, "m": 31, "year": 366, "y": 366}


class SearchEngine(Provider):
    """What the four engines share: the control endpoint, the malformed switch, auth."""

    def __init__(self, core: Any) -> None:
        super().__init__(core)
        self.malformed = False
        self.json_format = True

    def add_control(self, app: web.Application) -> None:
        app.router.add_get("/_emulator/search", self.control)
        app.router.add_post("/_emulator/search", self.control)

    async def control(self, request: web.Request) -> web.Response:
        if request.method == "POST":
            try:
                changes = await request.json()
            except ValueError:
                changes = None
            if not isinstance(changes, dict):
                return self.json_response({"error": "expected a JSON object"}, 400)
            if "malformed" in changes:
                self.malformed = bool(changes["malformed"])
            if "json_format" in changes:
                self.json_format = bool(changes["json_format"])
        return self.json_response({"malformed": self.malformed, "json_format": self.json_format})

    async def answer(self, request: web.Request, knobs: Knobs, payload: Any) -> web.StreamResponse:
        if self.malformed:
            await self.delay(knobs, first_token=True)
            return web.Response(body=_MALFORMED, content_type="application/json")
        return await self.send_json(request, knobs, payload)

    def bearer_ok(self, request: web.Request, knobs: Knobs, body_key: Any = None) -> bool | None:
        """True: the key is right; False: wrong; None: no key at all."""
        header = request.headers.get("Authorization", "")
        key = header[7:].strip() if header[:7].lower() == "bearer " else ""
        if not key and isinstance(body_key, str):
            key = body_key
        if not key:
            return None
        return knobs.api_key is None or key == knobs.api_key

    def invalid_json(self) -> web.Response:
        return self.error(400, "the request body is not valid JSON")

    async def not_found(self, request: web.Request, knobs: Knobs, body: Any) -> web.Response:
        return self.error(404, "Not Found")
