"""A model that reads search results: when a chat request's system (or developer) message
holds numbered sources as relaygate's online search writes them (``[1] Title`` then
``URL: …`` lines, ``online/inject.py``), the OpenAI-format emulator answers from them,
citing ``[1]`` and ``[2]`` inline like a real model told to cite. So the demo and the tests
see citations that come from the answer, not from the gateway."""

from __future__ import annotations

import re
from typing import Any

__all__ = ["grounded_reply"]

_SOURCE = re.compile(r"^\[(\d{1,2})\] (.+)\nURL: (\S+)\n(?:Published: .*\n)?(.*)$", re.MULTILINE)


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)
        )
    return ""


def grounded_reply(messages: list[Any]) -> str:
    """The answer citing the sources, or "" when the request has none."""
    sources: list[tuple[str, str]] = []
    for m in messages:
        if isinstance(m, dict) and m.get("role") in ("system", "developer"):
            for match in _SOURCE.finditer(_text(m.get("content"))):
                sources.append((match.group(2).strip(), match.group(4).strip()))
    if not sources:
        return ""
    title, body = sources[0]
    first = body.split(". ")[0].strip().rstrip(".")[:200] or title
    reply = f"According to {title}: {first} [1]."
    if len(sources) > 1:
        reply += f" See also {sources[1][0]} [2]."
    return reply
