"""A model that reads search results: when a chat request's system (or developer) message
holds numbered sources as relaygate's online search writes them (``[1] Title`` then
``URL: …`` lines, ``online/inject.py``), the OpenAI-format emulator answers from them,
citing ``[1]`` and ``[2]`` inline like a real model told to cite. So the demo and the tests
see citations that come from the answer, not from the gateway. A query-rewrite request
(``online/query.py``) gets the JSON query it asks for."""

from __future__ import annotations

import re
from typing import Any

import orjson

__all__ = ["grounded_reply"]

#: relaygate's query-rewrite instruction (``online/query.py``): answered with the JSON it asks
_REWRITE = "You turn a conversation into one web search query"

_SOURCE = re.compile(r"^\[(\d{1,2})\] (.+)\nURL: (\S+)\n(?:Published: .*\n)?(.*)$", re.MULTILINE)


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)
        )
    return ""


def _rewrite(messages: list[Any]) -> str:
    """A query-rewrite request (the gateway's online search with a rewrite model): the
    JSON it asks for, the user lines of the transcript joined (so a test can tell it from
    the gateway's own last-turn query)."""
    transcript = _text(messages[-1].get("content")) if isinstance(messages[-1], dict) else ""
    users = [ln[6:].strip() for ln in transcript.splitlines() if ln.startswith("user: ")]
    return orjson.dumps({"query": " ".join(users)}).decode()


def grounded_reply(messages: list[Any]) -> str:
    """The answer citing the sources, a rewritten query for a rewrite request, or ""."""
    first = messages[0] if messages and isinstance(messages[0], dict) else {}
    if first.get("role") == "system" and _REWRITE in _text(first.get("content")):
        return _rewrite(messages)
    sources: list[tuple[str, str]] = []
    for m in messages:
        if isinstance(m, dict) and m.get("role") in ("system", "developer"):
            for match in _SOURCE.finditer(_text(m.get("content"))):
                sources.append((match.group(2).strip(), match.group(4).strip()))
    if not sources:
        return ""
    title, body = sources[0]
    sentence = body.split(". ")[0].strip().rstrip(".")[:200] or title
    reply = f"According to {title}: {sentence} [1]."
    if len(sources) > 1:
        reply += f" See also {sources[1][0]} [2]."
    return reply
