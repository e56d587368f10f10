"""What the remote search backends share: :class:`JsonClient` (one aiohttp session per
backend, a total timeout, JSON decoding, every failure turned into :class:`SearchFailed`
with a short message that never carries the key), and small helpers for the request
parameters every backend maps (:func:`recency_window`, :func:`site_query`) and for the
answers (:func:`map_hits`, :func:`keep_domains`, :func:`clean`, :func:`as_float`)."""

from __future__ import annotations

import asyncio
import html
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal
from urllib.parse import quote, quote_plus, urlsplit

import aiohttp
import orjson

from relaygate.online.base import Hit, SearchFailed

__all__ = [
    "MAX_ANSWER_BYTES",
    "BackendHTTPError",
    "JsonClient",
    "as_float",
    "clean",
    "host_in",
    "keep_domains",
    "map_hits",
    "recency_window",
    "sanitize",
    "site_query",
]

#: a search answer larger than this is refused (no engine sends that much for 50 hits)
MAX_ANSWER_BYTES = 4 * 1024 * 1024
_MESSAGE_CHARS = 200
_TAGS = re.compile(r"<[^>]{0,200}>")
_SPACES = re.compile(r"\s+")
_KEY_PARAM = re.compile(r"(?i)\b(key|api_key|apikey|token|access_token)=([^&\s\"']+)")
_BEARER = re.compile(r"(?i)\bbearer\s+[^\s\"',]+")

Describe = Callable[[int, Any], str]


class BackendHTTPError(SearchFailed):
    """The backend answered with an HTTP error (``status``), or with a body that says one."""

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message, kind="error")
        self.status = status


def sanitize(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` made safe for an operator's log: tags dropped, whitespace collapsed, each
    secret (raw, URL-quoted, form-quoted) and anything that looks like ``key=…`` or
    ``Bearer …`` masked, cut to 200 characters."""
    out = html.unescape(_TAGS.sub(" ", text))
    for secret in secrets:
        if len(secret) >= 4:
            for form in {secret, quote(secret, safe=""), quote_plus(secret)}:
                out = out.replace(form, "***")
    out = _KEY_PARAM.sub(r"\1=***", out)
    out = _BEARER.sub("Bearer ***", out)
    out = _SPACES.sub(" ", out).strip()
    if len(out) > _MESSAGE_CHARS:
        out = out[: _MESSAGE_CHARS - 1].rstrip() + "…"
    return out


class JsonClient:
    """An aiohttp session for one backend, opened on first use (inside the running loop).

    ``secrets`` (the API key) are masked in every message this client raises. ``describe``
    turns an error answer (status, decoded JSON or text) into the backend's own words.
    """

    def __init__(
        self,
        backend: str,
        *,
        timeout: float,
        headers: Mapping[str, str] | None = None,
        secrets: Iterable[str] = (),
        describe: Describe | None = None,
    ) -> None:
        self.backend = backend
        self.timeout = timeout
        self._headers = dict(headers or {})
        self._secrets = tuple(s for s in secrets if s)
        self._describe = describe
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                headers={"User-Agent": "relaygate-search/1", **self._headers},
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                connector=aiohttp.TCPConnector(limit=32),
            )
        return self._session

    def fail(self, message: str, *, kind: str = "error", status: int | None = None) -> SearchFailed:
        text = f"{self.backend}: {sanitize(message, self._secrets)}"
        if status is not None:
            return BackendHTTPError(text, status=status)
        return SearchFailed(text, kind=kind)

    async def request(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, str] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        """The decoded JSON answer of a 2xx; raises :class:`SearchFailed` otherwise."""
        session = self._open()
        try:
            async with session.request(
                method,
                url,
                params=params,
                data=None if json is None else orjson.dumps(json),
                headers={"Content-Type": "application/json", **(headers or {})}
                if json is not None
                else headers,
                allow_redirects=False,
            ) as resp:
                raw = await resp.content.read(MAX_ANSWER_BYTES + 1)
                status = resp.status
        except TimeoutError:
            raise self.fail(f"no answer within {self.timeout:g} s", kind="timeout") from None
        except aiohttp.ClientConnectorError as exc:
            raise self.fail(
                f"cannot connect to {_origin(url)} ({exc.strerror or 'refused'})"
            ) from None
        except aiohttp.ClientError as exc:
            raise self.fail(f"connection failed ({type(exc).__name__})") from None
        if len(raw) > MAX_ANSWER_BYTES:
            raise self.fail(f"answer larger than {MAX_ANSWER_BYTES} bytes")
        body: Any
        try:
            body = orjson.loads(raw) if raw.strip() else None
        except orjson.JSONDecodeError:
            body = None
            if 200 <= status < 300:
                raise self.fail(f"HTTP {status} with a body that is not valid JSON") from None
        if not 200 <= status < 300:
            detail = ""
            if self._describe is not None:
                detail = self._describe(status, body if body is not None else _text(raw))
            if not detail:
                detail = _text(raw) if body is None else ""
            raise self.fail(f"HTTP {status}" + (f": {detail}" if detail else ""), status=status)
        return body

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
            # let the connector's transports finish closing (aiohttp's advice)
            await asyncio.sleep(0)
        self._session = None


def _text(raw: bytes) -> str:
    return raw[:2000].decode("utf-8", "replace")


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")


def recency_window(days: int | None) -> Literal["day", "week", "month", "year"] | None:
    """The smallest of the usual named windows that covers ``days`` (None: no limit)."""
    if days is None or days <= 0:
        return None
    if days <= 1:
        return "day"
    if days <= 7:
        return "week"
    if days <= 31:
        return "month"
    return "year" if days <= 366 else None


def host_in(url: str, domains: Iterable[str]) -> bool:
    """Whether ``url``'s host is one of ``domains`` or below one of them."""
    host = (urlsplit(url).hostname or "").lower().rstrip(".")
    for domain in domains:
        d = domain.lower().strip().lstrip(".").rstrip(".")
        if d and (host == d or host.endswith("." + d)):
            return True
    return False


def keep_domains(hits: list[Hit], domains: tuple[str, ...]) -> list[Hit]:
    """The hits on ``domains`` (all of them when no domain is asked for)."""
    if not domains:
        return hits
    return [h for h in hits if host_in(h.url, domains)]


def site_query(query: str, domains: tuple[str, ...]) -> str:
    """``query`` with ``site:`` operators for engines that only take the query string."""
    sites = [d.strip() for d in domains if d.strip()]
    if not sites:
        return query
    if len(sites) == 1:
        return f"{query} site:{sites[0]}"
    return f"{query} (" + " OR ".join(f"site:{s}" for s in sites) + ")"


def clean(value: Any) -> str:
    """A string field of an answer: tags dropped, entities decoded, spaces collapsed."""
    if not isinstance(value, str):
        return ""
    return _SPACES.sub(" ", html.unescape(_TAGS.sub(" ", value))).strip()


def as_float(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


Field = str | tuple[str, ...] | Callable[[dict[str, Any]], str | None]


def _field(item: dict[str, Any], field: Field | None) -> str:
    """A result field: the first non-empty of the named keys, or a function's value."""
    if field is None:
        return ""
    if callable(field):
        return field(item) or ""
    for key in (field,) if isinstance(field, str) else field:
        value = clean(item.get(key))
        if value:
            return value
    return ""


def map_hits(
    items: Iterable[Any],
    source: str,
    *,
    url: str,
    title: Field,
    snippet: Field,
    published: Field | None = None,
    score: str | None = None,
    text: Field | None = None,
    domains: tuple[str, ...] = (),
    k: int,
) -> list[Hit]:
    """A backend's result objects as hits, best first, at most ``k``: items that are not
    objects or whose ``url`` is not http(s) are skipped, an empty title becomes the URL,
    and ``domains`` (when given) keep the hits on those sites."""
    hits: list[Hit] = []
    for item in items:
        if not isinstance(item, dict):
            continue
        link = item.get(url)
        if not isinstance(link, str) or not link.startswith(("http://", "https://")):
            continue
        hits.append(
            Hit(
                url=link,
                title=_field(item, title) or link,
                snippet=_field(item, snippet),
                source=source,
                published=_field(item, published) or None,
                score=as_float(item.get(score)) if score else None,
                text=_field(item, text),
            )
        )
    return keep_domains(hits, domains)[:k]
