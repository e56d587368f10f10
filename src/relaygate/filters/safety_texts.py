"""Where the texts a model reads sit in a request body, per endpoint (docs/safety.md,
"What is checked"): each text is returned with a setter, so a masked text replaces the
original in the body the upstream receives."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["TextRef", "request_texts"]

#: (text, put: write a replacement back, where: the audit's "where")
TextRef = tuple[str, Callable[[str], None], str]

_TEXT_PART_TYPES = frozenset({"text", "input_text", "output_text"})


def _slot(obj: Any, key: Any) -> Callable[[str], None]:
    def put(value: str) -> None:
        obj[key] = value

    return put


def _field(obj: Any, key: str, where: str) -> Iterator[TextRef]:
    """``obj[key]`` when it is a string."""
    if isinstance(obj, dict):
        value = obj.get(key)
        if isinstance(value, str) and value:
            yield value, _slot(obj, key), where


def _content(obj: dict[str, Any], key: str, where: str) -> Iterator[TextRef]:
    """A content field: a string, or a list of parts (text parts are checked; images,
    audio and files are not read as text)."""
    value = obj.get(key)
    if isinstance(value, str):
        if value:
            yield value, _slot(obj, key), where
    elif isinstance(value, list):
        for i, part in enumerate(value):
            if isinstance(part, str):
                if part:
                    yield part, _slot(value, i), where
            elif isinstance(part, dict) and part.get("type", "text") in _TEXT_PART_TYPES:
                yield from _field(part, "text", where)


def _tool_calls(msg: dict[str, Any], where: str) -> Iterator[TextRef]:
    calls = msg.get("tool_calls")
    if isinstance(calls, list):
        for call in calls:
            if isinstance(call, dict):
                yield from _field(call.get("function"), "arguments", where)
    yield from _field(msg.get("function_call"), "arguments", where)


def _messages(body: dict[str, Any]) -> Iterator[TextRef]:
    messages = body.get("messages")
    if not isinstance(messages, list):
        return
    for msg in messages:
        if not isinstance(msg, dict):
            continue
        role = msg.get("role")
        where = "tool" if role in ("tool", "function") else "prompt"
        yield from _content(msg, "content", where)
        yield from _field(msg, "reasoning_content", "prompt")
        yield from _tool_calls(msg, "tool")


def _strings(body: dict[str, Any], key: str) -> Iterator[TextRef]:
    """A string, or a list of strings / text parts (``prompt``, ``input``)."""
    yield from _content(body, key, "prompt")


def _responses_input(body: dict[str, Any]) -> Iterator[TextRef]:
    """A native Responses body: ``instructions`` and the ``input`` items (messages, tool
    results — new-api #7432 — and tool-call arguments)."""
    yield from _field(body, "instructions", "prompt")
    items = body.get("input")
    if isinstance(items, str):
        yield from _field(body, "input", "prompt")
        return
    if not isinstance(items, list):
        return
    for item in items:
        if not isinstance(item, dict):
            continue
        kind = item.get("type", "message")
        if kind == "message":
            yield from _content(item, "content", "prompt")
        elif kind in ("function_call_output", "custom_tool_call_output"):
            yield from _content(item, "output", "tool")
        elif kind == "function_call":
            yield from _field(item, "arguments", "tool")
        elif kind == "custom_tool_call":
            yield from _field(item, "input", "tool")


def _rerank(body: dict[str, Any]) -> Iterator[TextRef]:
    yield from _field(body, "query", "prompt")
    docs = body.get("documents")
    if isinstance(docs, list):
        for i, doc in enumerate(docs):
            if isinstance(doc, str) and doc:
                yield doc, _slot(docs, i), "prompt"
            else:
                yield from _field(doc, "text", "prompt")


def request_texts(endpoint: str, body: dict[str, Any]) -> Iterator[TextRef]:
    """Every text of ``body`` the model will read, for the endpoint ``ctx.endpoint``."""
    if "messages" in body:  # chat, and the chat view of the other formats
        yield from _messages(body)
        yield from _field(body, "system", "prompt")
    if endpoint == "responses":
        yield from _responses_input(body)
    elif endpoint in ("completions",):
        yield from _strings(body, "prompt")
        yield from _field(body, "suffix", "prompt")
    elif endpoint in ("embeddings", "moderations", "audio.speech"):
        yield from _strings(body, "input")
    elif endpoint.startswith("images."):
        yield from _field(body, "prompt", "prompt")
    elif endpoint == "rerank":
        yield from _rerank(body)
