"""OpenAI moderations (``POST /moderations``) and the Jina/Cohere-style ``POST /rerank``.

Moderations: ``input`` is a string (one result), an array of strings (one result each) or an
array of ``text``/``image_url`` parts (one result for them all). An input is flagged when its
text or an image URL contains one of :data:`MODERATION_TRIGGERS` as a whole word (any case);
the word's categories are ``true`` with score 0.98, every other score is a small deterministic
value below 0.001. ``model`` defaults to ``omni-moderation-latest``; the answer names the
snapshot (``omni-moderation-2024-09-26``, ``text-moderation-007``) like OpenAI's.
``category_applied_input_types`` (omni models) lists ``text`` where the input has text and
``image`` for the image categories where it has an image.

Rerank: ``query`` and ``documents`` (strings or ``{"text": …}``); the score of a document is
the share of the query's distinct words (lowercased ``\\w+``) found in it, 0..1 (see
:func:`rerank_score`); results best first (ties by index), ``top_n`` of them,
``document: {"text": …}`` unless ``return_documents`` is false. ``usage.total_tokens`` = the
tokens (~4 characters each) of the query plus those of every document.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from aiohttp import web

from relaygate.emulator.base import count_tokens
from relaygate.emulator.knobs import Knobs
from relaygate.emulator.openai_params import (
    Host,
    bad_request,
    get_int,
    json_object,
    need_model,
    required,
)

__all__ = ["MODERATION_TRIGGERS", "moderations", "rerank", "rerank_score"]

#: words that get an input flagged, and the categories each one sets
MODERATION_TRIGGERS: dict[str, tuple[str, ...]] = {
    "kill": ("violence", "harassment", "harassment/threatening"),
    "suicide": ("self-harm", "self-harm/intent"),
    "bomb": ("illicit", "illicit/violent", "violence"),
}
CATEGORIES = (
    "harassment",
    "harassment/threatening",
    "hate",
    "hate/threatening",
    "illicit",
    "illicit/violent",
    "self-harm",
    "self-harm/instructions",
    "self-harm/intent",
    "sexual",
    "sexual/minors",
    "violence",
    "violence/graphic",
)
#: the categories OpenAI also scores on images
IMAGE_CATEGORIES = frozenset(
    {
        "self-harm",
        "self-harm/instructions",
        "self-harm/intent",
        "sexual",
        "violence",
        "violence/graphic",
    }
)
SNAPSHOTS = {
    "omni-moderation-latest": "omni-moderation-2024-09-26",
    "text-moderation-latest": "text-moderation-007",
    "text-moderation-stable": "text-moderation-007",
}
_WORD = re.compile(r"\w+")


def _flags(text: str) -> set[str]:
    words = {w.lower() for w in _WORD.findall(text)}
    return {c for word, cats in MODERATION_TRIGGERS.items() if word in words for c in cats}


def _low_score(text: str, category: str) -> float:
    digest = hashlib.blake2b(f"{category}\0{text}".encode(), digest_size=4).digest()
    return round(1e-6 + int.from_bytes(digest, "big") / 0xFFFFFFFF * 9.99e-4, 9)


def _result(texts: list[str], images: list[str], applied: bool) -> dict[str, Any]:
    seen = " ".join(texts + images)
    flagged = _flags(seen)
    out: dict[str, Any] = {
        "flagged": bool(flagged),
        "categories": {c: c in flagged for c in CATEGORIES},
        "category_scores": {c: 0.98 if c in flagged else _low_score(seen, c) for c in CATEGORIES},
    }
    if applied:
        out["category_applied_input_types"] = {
            c: (["text"] if texts else []) + (["image"] if images and c in IMAGE_CATEGORIES else [])
            for c in CATEGORIES
        }
    return out


def _items(host: Host, raw: Any) -> list[tuple[list[str], list[str]]]:
    """(texts, image URLs) per result."""
    if isinstance(raw, str):
        return [([raw], [])]
    if isinstance(raw, list) and raw and all(isinstance(x, str) for x in raw):
        return [([x], []) for x in raw]
    if isinstance(raw, list) and raw and all(isinstance(x, dict) for x in raw):
        texts: list[str] = []
        images: list[str] = []
        for i, part in enumerate(raw):
            kind = part.get("type")
            url = part.get("image_url")
            if kind == "text" and isinstance(part.get("text"), str):
                texts.append(part["text"])
            elif kind == "image_url" and isinstance(url, dict) and isinstance(url.get("url"), str):
                images.append(url["url"])
            else:
                raise bad_request(
                    host, f"Invalid value for 'input[{i}]'.", f"input[{i}]", "invalid_value"
                )
        return [(texts, images)]
    required(host, raw if raw != [] else None, "input")
    raise bad_request(
        host,
        "Invalid 'input': expected a string, an array of strings or an array of input parts.",
        "input",
        "invalid_type",
    )


async def moderations(
    host: Host, request: web.Request, knobs: Knobs, body: Any
) -> web.StreamResponse:
    """``POST /moderations``."""
    body = json_object(host, body)
    raw_model = body.get("model")
    model = "omni-moderation-latest" if raw_model is None else need_model(host, raw_model)
    items = _items(host, body.get("input"))
    omni = not model.startswith("text-moderation")
    if not omni and any(images for _, images in items):
        raise bad_request(
            host, f"Model '{model}' does not support image inputs.", "input", "invalid_value"
        )
    await host.gate(knobs, model)
    payload = {
        "id": host.core.ids("modr-"),
        "model": SNAPSHOTS.get(model, model),
        "results": [_result(texts, images, omni) for texts, images in items],
    }
    return await host.send_json(request, knobs, payload)


# ------------------------------------------------------------------------------------------
# rerank
# ------------------------------------------------------------------------------------------


def rerank_score(query: str, document: str) -> float:
    """Share of the query's distinct words (lowercased ``\\w+``) that occur in ``document``."""
    wanted = {w.lower() for w in _WORD.findall(query)}
    if not wanted:
        return 0.0
    have = {w.lower() for w in _WORD.findall(document)}
    return len(wanted & have) / len(wanted)


def _documents(host: Host, raw: Any) -> list[str]:
    if not isinstance(raw, list) or not raw:
        required(host, None, "documents")
    docs: list[str] = []
    for i, doc in enumerate(raw):
        if isinstance(doc, dict) and isinstance(doc.get("text"), str):
            doc = doc["text"]
        if not isinstance(doc, str):
            raise bad_request(
                host,
                f"Invalid type for 'documents[{i}]': expected a string or an object with 'text'.",
                f"documents[{i}]",
                "invalid_type",
            )
        docs.append(doc)
    return docs


async def rerank(host: Host, request: web.Request, knobs: Knobs, body: Any) -> web.StreamResponse:
    """``POST /rerank`` (Jina/Cohere request and answer)."""
    body = json_object(host, body)
    model = need_model(host, body.get("model"))
    query = required(host, body.get("query"), "query")
    if not isinstance(query, str):
        raise bad_request(host, "Invalid type for 'query': expected a string.", "query")
    docs = _documents(host, body.get("documents"))
    top_n = get_int(host, body.get("top_n"), "top_n", 1, None, len(docs))
    with_docs = body.get("return_documents") is not False
    await host.gate(knobs, model)
    order = sorted(
        ((rerank_score(query, d), i) for i, d in enumerate(docs)), key=lambda s: (-s[0], s[1])
    )
    results: list[dict[str, Any]] = []
    for score, i in order[:top_n]:
        result: dict[str, Any] = {"index": i, "relevance_score": score}
        if with_docs:
            result["document"] = {"text": docs[i]}
        results.append(result)
    tokens = count_tokens(query) + sum(count_tokens(d) for d in docs)
    payload = {
        "id": host.core.ids("rerank-"),
        "model": model,
        "results": results,
        "usage": {"total_tokens": tokens},
    }
    return await host.send_json(request, knobs, payload)
