"""Citations out: the ``[n]`` markers of an answer become OpenAI ``url_citation``
annotations (``start_index``/``end_index``: the marker's character offsets in the
message content, in code points), on ``message.annotations`` for a whole answer and as
an annotation-only ``delta.annotations`` chunk just before each choice's finishing
chunk while streaming; the sources' URLs also go in a top-level ``citations`` list
(LobeChat shows it) with the search's outcome under ``online``."""

from __future__ import annotations

import re
from typing import Any

import orjson

from relaygate.online.base import Hit

__all__ = ["CitationTap", "annotate_answer", "annotations_for"]

#: [1], [1, 2], [1][2] (each bracket on its own), 【1】 (full-width brackets)
_MARK = re.compile(r"\[(\d{1,2}(?:\s*[,，]\s*\d{1,2})*)\]|【(\d{1,2})】")


def annotations_for(text: str, hits: list[Hit]) -> list[dict[str, Any]]:
    """One ``url_citation`` per cited source number inside the valid range."""
    out: list[dict[str, Any]] = []
    if not hits or not text:
        return out
    for m in _MARK.finditer(text):
        numbers = m.group(1) or m.group(2)
        for raw in re.split(r"\s*[,，]\s*", numbers):
            n = int(raw)
            if 1 <= n <= len(hits):
                hit = hits[n - 1]
                out.append(
                    {
                        "type": "url_citation",
                        "url_citation": {
                            "start_index": m.start(),
                            "end_index": m.end(),
                            "url": hit.url,
                            "title": hit.title,
                        },
                    }
                )
    return out


def annotate_answer(obj: dict[str, Any], hits: list[Hit], summary: dict[str, Any]) -> None:
    """A whole chat completion: annotations on each choice's message, ``citations`` and
    ``online`` at the top level."""
    for choice in obj.get("choices") or ():
        message = choice.get("message") if isinstance(choice, dict) else None
        if not isinstance(message, dict):
            continue
        content = message.get("content")
        found = annotations_for(content, hits) if isinstance(content, str) else []
        if found:
            old = message.get("annotations")
            message["annotations"] = (old if isinstance(old, list) else []) + found
    if hits:
        obj["citations"] = [h.url for h in hits]
    obj["online"] = summary


class CitationTap:
    """Watches a stream's chunks (only online requests pay for it): keeps each choice's
    text, and before the chunk that finishes a choice puts an annotation-only chunk
    naming the sources its text cited."""

    __slots__ = ("_announce", "_hits", "_summary", "_texts")

    def __init__(self, hits: list[Hit], summary: dict[str, Any], *, announce: bool) -> None:
        self._hits = hits
        self._summary = summary
        self._texts: dict[int, list[str]] = {}
        #: the stream has not said how the search went (no notice chunks): the first
        #: finishing choice's extra chunk carries ``online`` even without citations
        self._announce = announce

    def on_response(self, obj: dict[str, Any]) -> None:
        annotate_answer(obj, self._hits, self._summary)

    def chunks(self, payloads: list[bytes]) -> list[bytes]:
        out: list[bytes] = []
        for p in payloads:
            try:
                chunk = orjson.loads(p)
            except orjson.JSONDecodeError:
                out.append(p)
                continue
            choices = chunk.get("choices") if isinstance(chunk, dict) else None
            if not isinstance(choices, list):
                out.append(p)
                continue
            for choice in choices:
                if not isinstance(choice, dict):
                    continue
                index = choice.get("index", 0)
                index = index if isinstance(index, int) else 0
                delta = choice.get("delta")
                if isinstance(delta, dict) and isinstance(delta.get("content"), str):
                    self._texts.setdefault(index, []).append(delta["content"])
                if choice.get("finish_reason"):
                    extra = self._annotation_chunk(chunk, index)
                    if extra is not None:
                        out.append(extra)
            out.append(p)
        return out

    def _annotation_chunk(self, chunk: dict[str, Any], index: int) -> bytes | None:
        text = "".join(self._texts.pop(index, ()))
        found = annotations_for(text, self._hits)
        if not found and not self._announce:
            return None
        self._announce = False
        delta: dict[str, Any] = {"annotations": found} if found else {}
        out: dict[str, Any] = {
            "id": chunk.get("id", ""),
            "object": "chat.completion.chunk",
            "created": chunk.get("created", 0),
            "model": chunk.get("model", ""),
            "choices": [{"index": index, "delta": delta, "finish_reason": None}],
        }
        if self._hits:
            out["citations"] = [h.url for h in self._hits]
        out["online"] = self._summary
        return orjson.dumps(out)
