"""Which hits become sources, in which order, and how much of each: pure functions.

:func:`prepare_sources` drops hits with nothing to show, orders them (each backend's own
order first, then the backend's score to break ties between backends), removes duplicate
URLs (:func:`normalise_url`), keeps the first ``max_results``, and trims them so that
all of them together cost at most ``budget_tokens`` (:func:`source_cost`, counted with
the ``count_tokens`` it is given, e.g. ``relaygate.billing.tokens.count_text``). Each
returned hit is a copy whose ``text`` is what to show the model: the page text when it
was fetched, else the snippet, trimmed. The budget is shared fairly: hits that need less
than an equal share leave the rest to the others; when there is not room for a useful
part of every hit, the lowest-ranked are dropped.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from relaygate.online.base import Hit

__all__ = [
    "OVERHEAD_TOKENS",
    "normalise_url",
    "order_hits",
    "prepare_sources",
    "source_cost",
    "trim_to_tokens",
]

CountTokens = Callable[[str], int]

#: what the numbering and labels around one source cost ("[n] ", "URL: ", newlines)
OVERHEAD_TOKENS = 8
MIN_BODY_TOKENS = 16  # a hit gets at least this much of its text, or is dropped
MAX_TITLE_CHARS = 300
MAX_PUBLISHED_CHARS = 40
MAX_BODY_CHARS = 60_000  # cut before counting: the budget is never near this
_ELLIPSIS = "…"
_DEFAULT_PORTS = {"http": 80, "https": 443}


def normalise_url(url: str) -> str:
    """The URL as compared for duplicates: scheme and host in lower case, no default
    port, no fragment, no trailing slash, no ``utm_*`` parameters, no credentials."""
    raw = url.strip()
    try:
        parts = urlsplit(raw)
        port = parts.port
    except ValueError:
        return raw
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    if port is not None and port != _DEFAULT_PORTS.get(scheme):
        host = f"{host}:{port}"
    query = urlencode(
        [
            (k, v)
            for k, v in parse_qsl(parts.query, keep_blank_values=True)
            if not k.lower().startswith("utm_")
        ]
    )
    return urlunsplit((scheme, host, parts.path.rstrip("/"), query, ""))


def _score(hit: Hit) -> float | None:
    s = hit.score
    return s if isinstance(s, int | float) and math.isfinite(s) else None


def order_hits(hits: Iterable[Hit]) -> list[Hit]:
    """Hits by their rank within their own backend (``source``), then by score (highest
    first, hits without one after), then as they came. With one backend this is the
    backend's order."""
    seen: dict[str, int] = {}
    keyed = []
    for i, hit in enumerate(hits):
        rank = seen.get(hit.source, 0)
        seen[hit.source] = rank + 1
        score = _score(hit)
        keyed.append((rank, score is None, -(score or 0.0), i, hit))
    keyed.sort(key=lambda k: k[:4])
    return [k[4] for k in keyed]


def _clip(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + _ELLIPSIS


def _body(hit: Hit) -> str:
    return (hit.text.strip() or hit.snippet.strip())[:MAX_BODY_CHARS]


def source_cost(hit: Hit, count_tokens: CountTokens, overhead: int = OVERHEAD_TOKENS) -> int:
    """Tokens one source takes in the prompt: title (or the URL in its place), URL,
    date, ``text``, and the fixed ``overhead`` for the labels around them."""
    return (
        overhead
        + count_tokens(hit.title or hit.url)
        + count_tokens(hit.url)
        + count_tokens(hit.published or "")
        + count_tokens(hit.text)
    )


def trim_to_tokens(text: str, limit: int, count_tokens: CountTokens) -> str:
    """The longest prefix of ``text`` found (binary search on its length, ending with
    "…" when cut, on a word boundary when one is near) that counts at most ``limit``
    tokens; ``""`` when not even a little fits."""
    if limit <= 0 or not text:
        return ""
    if count_tokens(text) <= limit:
        return text

    def cut(n: int) -> str:
        return text[:n].rstrip() + _ELLIPSIS

    lo, hi = 0, min(len(text) - 1, limit * 16)  # a token is rarely 16 characters
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if count_tokens(cut(mid)) <= limit:
            lo = mid
        else:
            hi = mid - 1
    if lo == 0:
        return ""
    space = max(text.rfind(" ", 0, lo), text.rfind("\n", 0, lo))
    if space > lo * 0.85 and count_tokens(cut(space)) <= limit:
        return cut(space)
    best = cut(lo)
    return best if count_tokens(best) <= limit else ""


def _dedupe(hits: Iterable[Hit]) -> list[Hit]:
    kept: dict[str, Hit] = {}
    for hit in hits:
        key = normalise_url(hit.url)
        first = kept.get(key)
        if first is None:
            kept[key] = replace(hit)  # a copy: the callers' hits are not changed
        elif not first.text.strip() and hit.text.strip():
            first.text = hit.text  # the better-ranked copy takes the fetched text
    return list(kept.values())


def _share(room: int, needs: Sequence[int]) -> list[int]:
    """Split ``room`` so that no one gets more than it needs and the rest is even."""
    alloc = [0] * len(needs)
    left, k = room, len(needs)
    for i in sorted(range(len(needs)), key=needs.__getitem__):
        give = max(0, min(needs[i], left // k))
        alloc[i] = give
        left -= give
        k -= 1
    return alloc


def prepare_sources(
    hits: Iterable[Hit],
    *,
    budget_tokens: int,
    count_tokens: CountTokens,
    max_results: int = 5,
    overhead_tokens: int = OVERHEAD_TOKENS,
) -> list[Hit]:
    """The sources to inject: at most ``max_results`` copies of ``hits``, ordered, without
    duplicate URLs or empty hits, whose :func:`source_cost` adds up to at most
    ``budget_tokens``. The inputs are not changed."""
    if budget_tokens <= 0 or max_results <= 0:
        return []
    usable = [hit for hit in hits if hit.url.strip() and _body(hit)]
    picked = [
        replace(
            hit,
            url=hit.url.strip(),
            title=_clip(hit.title, MAX_TITLE_CHARS),
            published=_clip(hit.published, MAX_PUBLISHED_CHARS) if hit.published else None,
            text=_body(hit),
        )
        for hit in _dedupe(order_hits(usable))[:max_results]
    ]
    while picked:
        heads = [source_cost(replace(h, text=""), count_tokens, overhead_tokens) for h in picked]
        needs = [count_tokens(h.text) for h in picked]
        alloc = _share(budget_tokens - sum(heads), needs)
        if all(a >= min(n, MIN_BODY_TOKENS) for a, n in zip(alloc, needs, strict=True)):
            out = []
            for hit, limit in zip(picked, alloc, strict=True):
                text = trim_to_tokens(hit.text, limit, count_tokens)
                if text:
                    out.append(replace(hit, text=text))
            return out
        picked.pop()  # not enough room for every hit: the lowest-ranked goes
    return []
