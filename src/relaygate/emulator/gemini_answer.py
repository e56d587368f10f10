"""Gemini emulator: composing answers — the reply to a ``generateContent`` body
(thought parts, function calls, JSON mode, stop sequences, ``maxOutputTokens``, the
``BLOCK_OUTPUT`` trigger), ``usageMetadata``, the whole answer, the ``BLOCK_PROMPT``
answer and the SSE stream plan (``data: {…}\\r\\n\\r\\n``, usage on every chunk)."""

from __future__ import annotations

import json
from typing import Any

from relaygate.emulator.base import StreamPlan, count_tokens, sample_arguments, split_text
from relaygate.emulator.gemini_request import SIGNATURE, lower_schema, text_of
from relaygate.emulator.knobs import Knobs

__all__ = [
    "answer_payload",
    "blocked_payload",
    "compose",
    "event",
    "midstream",
    "stream_plan",
    "usage_metadata",
]

_SEP = b"\r\n\r\n"
_SAFETY_RATING = {"category": "HARM_CATEGORY_HARASSMENT", "probability": "HIGH", "blocked": True}


def _dumps(obj: Any) -> bytes:
    # Google's SSE payloads separate keys and values with ": " (as recorded)
    return json.dumps(obj, ensure_ascii=False, separators=(",", ": ")).encode()


def event(obj: Any) -> bytes:
    """One SSE event as Google frames it."""
    return b"data: " + _dumps(obj) + _SEP


def thinks_by_default(model: str) -> bool:
    """Gemini 2.5 and 3 think unless told not to (``thinkingBudget: 0``): their usage has
    ``thoughtsTokenCount`` even when no thought text is asked for (as recorded)."""
    return model.startswith(("gemini-2.5", "gemini-3"))


def is_gemini3(model: str) -> bool:
    """Gemini 3 (as recorded): call ids on ``functionCall``, a ``thoughtSignature`` on the
    answer's text, and a stream that ends with an empty text part carrying it."""
    return model.startswith("gemini-3")


def compose(body: dict[str, Any], knobs: Knobs, model: str = "") -> dict[str, Any]:
    """The whole (non-stream) answer: parts, finish reason, usage."""
    contents = body["contents"]
    prompt_text = text_of(contents) + text_of([body.get("systemInstruction") or {}])
    prompt = max(1, count_tokens(prompt_text) + 3 * len(contents))
    config = body.get("generationConfig")
    config = config if isinstance(config, dict) else {}
    thinking = config.get("thinkingConfig")
    thinking = thinking if isinstance(thinking, dict) else {}
    default = thinks_by_default(model)
    thinks = (bool(thinking) or default) and thinking.get("thinkingBudget") != 0
    v3 = is_gemini3(model)
    last = contents[-1] if isinstance(contents[-1], dict) else {}
    last_parts = [p for p in last.get("parts") or () if isinstance(p, dict)]
    responses = [p["functionResponse"] for p in last_parts if "functionResponse" in p]
    declared: list[dict[str, Any]] = []
    for tool in body.get("tools") or ():
        if isinstance(tool, dict):
            declared += [d for d in tool.get("functionDeclarations") or () if isinstance(d, dict)]
    calling = (body.get("toolConfig") or {}).get("functionCallingConfig") or {}
    mode = calling.get("mode", "AUTO")
    allowed = calling.get("allowedFunctionNames")
    if allowed:
        declared = [d for d in declared if d.get("name") in allowed]
    last_text = text_of([last])

    parts: list[dict[str, Any]] = []
    finish, text = "STOP", ""
    if thinks and thinking.get("includeThoughts"):
        parts.append({"text": knobs.reasoning, "thought": True})
    if "BLOCK_OUTPUT" in last_text:
        finish = "SAFETY"
    elif responses:
        text = "The tool returned: " + "; ".join(
            json.dumps(r.get("response"), sort_keys=True) for r in responses
        )
    elif declared and mode != "NONE":
        for k, decl in enumerate(declared):
            call: dict[str, Any] = {
                "name": decl.get("name"),
                "args": sample_arguments(lower_schema(decl.get("parameters"))),
            }
            if v3:
                call["id"] = f"call{k:04d}"
            part: dict[str, Any] = {"functionCall": call}
            if k == 0:
                part["thoughtSignature"] = SIGNATURE
            parts.append(part)
    elif config.get("responseMimeType") == "application/json":
        schema = config.get("responseSchema")
        text = json.dumps(
            sample_arguments(lower_schema(schema)) if schema else {"reply": knobs.reply}
        )
    else:
        text = knobs.reply
    stops = config.get("stopSequences")
    for stop in stops if isinstance(stops, list) else ():
        if isinstance(stop, str) and stop and stop in text:
            text = text[: text.index(stop)]
    limit = config.get("maxOutputTokens")
    if isinstance(limit, int) and count_tokens(text) > limit:
        text, finish = text[: limit * 4], "MAX_TOKENS"
    if text:
        # Gemini 3 signs its text; 2.5 signs the text that follows a tool result (recorded
        # on Vertex 2.5 Pro)
        signed = v3 or (thinks and bool(responses))
        parts.append({"text": text, "thoughtSignature": SIGNATURE} if signed else {"text": text})
    calls = [p for p in parts if "functionCall" in p]
    candidates_tokens = count_tokens(text) + sum(
        10 + count_tokens(json.dumps(p["functionCall"]["args"])) for p in calls
    )
    thoughts = count_tokens(knobs.reasoning) if thinks else 0
    return {
        "parts": parts,
        "text": text,
        "calls": calls,
        "finish": finish,
        "prompt": prompt,
        "candidates": max(candidates_tokens, 0),
        "thoughts": thoughts,
        "n": config.get("candidateCount") if isinstance(config.get("candidateCount"), int) else 1,
        "v3": v3,
    }


def usage_metadata(prompt: int, candidates: int, thoughts: int) -> dict[str, Any]:
    usage: dict[str, Any] = {
        "promptTokenCount": prompt,
        "candidatesTokenCount": candidates,
        "totalTokenCount": prompt + candidates + thoughts,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt}],
    }
    if thoughts:
        usage["thoughtsTokenCount"] = thoughts
    return usage


def blocked_payload(model: str, rid: str) -> dict[str, Any]:
    """The answer to a prompt containing ``BLOCK_PROMPT`` (``promptFeedback``)."""
    return {
        "promptFeedback": {
            "blockReason": "SAFETY",
            "safetyRatings": [
                {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH"}
            ],
        },
        "usageMetadata": {"promptTokenCount": 8, "totalTokenCount": 8},
        "modelVersion": model,
        "responseId": rid,
    }


def answer_payload(reply: dict[str, Any], model: str, rid: str) -> dict[str, Any]:
    """The non-stream answer: ``candidateCount`` copies of the composed reply."""
    n = max(1, reply["n"])
    candidates = []
    for k in range(n):
        cand: dict[str, Any] = {
            "content": {"parts": reply["parts"], "role": "model"},
            "finishReason": reply["finish"],
            "index": k,
        }
        if reply["calls"]:
            cand["finishMessage"] = "Model generated function call(s)."
        if reply["finish"] == "SAFETY":
            cand.pop("content")
            cand["safetyRatings"] = [dict(_SAFETY_RATING)]
        candidates.append(cand)
    return {
        "candidates": candidates,
        "usageMetadata": usage_metadata(
            reply["prompt"], reply["candidates"] * n, reply["thoughts"]
        ),
        "modelVersion": model,
        "responseId": rid,
    }


def midstream() -> bytes:
    """The in-stream error event (``Knobs.midstream_error``)."""
    err = {"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}}
    return event(err)


def stream_plan(reply: dict[str, Any], knobs: Knobs, model: str, rid: str) -> StreamPlan:
    """The composed reply as SSE events: thoughts, text pieces, then the last piece with
    the function calls, the finish reason and the final usage."""
    thoughts = reply["thoughts"]
    pieces = split_text(reply["text"], knobs.chunks) if reply["text"] else ()
    thought_parts = [p for p in reply["parts"] if p.get("thought")]
    chunks: list[bytes] = []
    sent = ""

    def chunk(parts: list[dict[str, Any]], finish: str | None, text_so_far: str) -> bytes:
        cand: dict[str, Any] = {"content": {"parts": parts, "role": "model"}, "index": 0}
        if finish:
            cand["finishReason"] = finish
            if reply["calls"]:
                cand["finishMessage"] = "Model generated function call(s)."
        obj = {
            "candidates": [cand],
            "usageMetadata": usage_metadata(
                reply["prompt"],
                count_tokens(text_so_far) if not finish else reply["candidates"],
                thoughts,
            ),
            "modelVersion": model,
            "responseId": rid,
        }
        return event(obj)

    if thought_parts:
        chunks.append(chunk(thought_parts, None, ""))
    for piece in pieces[:-1] if pieces else ():
        sent += piece
        chunks.append(chunk([{"text": piece}], None, sent))
    final: list[dict[str, Any]] = []
    if reply["v3"]:
        # Gemini 3 (recorded): the calls in a chunk of their own, then an empty text part
        # with the signature and the finish reason
        for piece in pieces[-1:]:
            sent += piece
            chunks.append(chunk([{"text": piece}], None, sent))
        if reply["calls"]:
            chunks.append(chunk(reply["calls"], None, reply["text"]))
        final.append({"text": "", "thoughtSignature": SIGNATURE})
    else:
        if pieces:
            final.append({"text": pieces[-1]})
        final += reply["calls"]
    if reply["finish"] == "SAFETY":
        obj = {
            "candidates": [
                {"finishReason": "SAFETY", "index": 0, "safetyRatings": [dict(_SAFETY_RATING)]}
            ],
            "usageMetadata": usage_metadata(reply["prompt"], 0, thoughts),
            "modelVersion": model,
            "responseId": rid,
        }
        tail = event(obj)
    else:
        tail = chunk(final, reply["finish"], reply["text"])
    return StreamPlan(b"", chunks, tail, midstream())
