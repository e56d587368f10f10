"""What to search for: the text of the conversation's last user turn (with the turn before
it when the last one is too short to stand alone), trimmed. An operator may name a small
model that rewrites the conversation into a query (``RELAYGATE_SEARCH_REWRITE_MODEL``);
:func:`rewrite_prompt` builds its request and :func:`read_rewrite` reads its answer."""

from __future__ import annotations

from typing import Any

import orjson

__all__ = ["MAX_QUERY_CHARS", "last_user_text", "read_rewrite", "rewrite_prompt", "search_query"]

MAX_QUERY_CHARS = 300
_SHORT = 12  # a last turn shorter than this ("and in 2025?") borrows the one before


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [
            p["text"]
            for p in content
            if isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str)
        ]
        return " ".join(parts)
    return ""


def last_user_text(messages: list[Any], turns: int = 1) -> list[str]:
    """The text of the last ``turns`` user messages, oldest first."""
    out: list[str] = []
    for m in reversed(messages):
        if isinstance(m, dict) and m.get("role") == "user":
            text = " ".join(_text(m.get("content")).split())
            if text:
                out.append(text)
                if len(out) >= turns:
                    break
    out.reverse()
    return out


def search_query(messages: list[Any]) -> str:
    """The query for ``messages`` ("" when no user turn has text)."""
    turns = last_user_text(messages, 2)
    if not turns:
        return ""
    query = turns[-1]
    if len(query) < _SHORT and len(turns) > 1:
        query = f"{turns[0]} {query}"
    return query[:MAX_QUERY_CHARS].strip()


_REWRITE = (
    "You turn a conversation into one web search query. Answer with JSON only: "
    '{"query": "..."} — a short query in the language of the user\'s last message, '
    "naming what the user wants to know now (resolve words like 'it' or 'that' from "
    "earlier turns). Today is {today}."
)


def rewrite_prompt(messages: list[Any], model: str, today: str) -> dict[str, Any]:
    """A chat-completions body asking ``model`` for the query (the last 6 turns)."""
    lines = []
    for m in [m for m in messages if isinstance(m, dict)][-6:]:
        role = m.get("role")
        if role in ("user", "assistant"):
            text = _text(m.get("content"))[:1000]
            if text:
                lines.append(f"{role}: {text}")
    return {
        "model": model,
        "messages": [
            {"role": "system", "content": _REWRITE.replace("{today}", today)},
            {"role": "user", "content": "\n".join(lines)},
        ],
        "temperature": 0,
        "max_tokens": 60,
        "stream": False,
    }


def read_rewrite(answer: str) -> str:
    """The query from the rewrite model's answer ("" when it gave none)."""
    text = answer.strip()
    start, end = text.find("{"), text.rfind("}")
    if start >= 0 and end > start:
        try:
            obj = orjson.loads(text[start : end + 1])
        except orjson.JSONDecodeError:
            obj = None
        if isinstance(obj, dict):
            q = obj.get("query")
            if isinstance(q, str):
                return " ".join(q.split())[:MAX_QUERY_CHARS]
            qs = obj.get("queries")
            if isinstance(qs, list) and qs and isinstance(qs[0], str):
                return " ".join(qs[0].split())[:MAX_QUERY_CHARS]
        return ""
    return " ".join(text.strip('"').split())[:MAX_QUERY_CHARS]
