"""Gemini emulator: reading and checking requests — the text of ``contents`` (for token
counts and the ``BLOCK_*`` triggers), schema types in lower case, the ``contents`` and
``thoughtSignature`` checks of ``generateContent`` and the Claude-on-Vertex body check.
The checks return Google's error message (answered with 400) or ``None``."""

from __future__ import annotations

import json
from typing import Any

__all__ = ["SIGNATURE", "claude_problem", "contents_problem", "lower_schema", "text_of"]

#: the ``thoughtSignature`` the emulator issues and expects back
SIGNATURE = "RW11bGF0ZWQgR2VtaW5pIHRob3VnaHQgc2lnbmF0dXJl"


def lower_schema(schema: Any) -> Any:
    """A Gemini schema with its ``type`` values in lower case (JSON Schema's)."""
    if isinstance(schema, dict):
        return {
            k: (v.lower() if k == "type" and isinstance(v, str) else lower_schema(v))
            for k, v in schema.items()
        }
    if isinstance(schema, list):
        return [lower_schema(v) for v in schema]
    return schema


def text_of(contents: Any) -> str:
    """The text of ``contents``: text parts, function responses and call arguments."""
    out: list[str] = []
    for content in contents if isinstance(contents, list) else ():
        for part in content.get("parts") or () if isinstance(content, dict) else ():
            if isinstance(part, dict):
                if isinstance(part.get("text"), str):
                    out.append(part["text"])
                elif isinstance(part.get("functionResponse"), dict):
                    out.append(json.dumps(part["functionResponse"].get("response")))
                elif isinstance(part.get("functionCall"), dict):
                    out.append(json.dumps(part["functionCall"].get("args")))
    return "".join(out)


def contents_problem(body: dict[str, Any], model: str) -> str | None:
    """``contents`` must be a non-empty list of non-empty ``parts``; a ``thoughtSignature``
    must be the one issued, and ``gemini-3*`` models need it on a turn's first call."""
    contents = body.get("contents")
    if not isinstance(contents, list) or not contents:
        return "* GenerateContentRequest.contents: contents is not specified"
    for i, content in enumerate(contents):
        parts = content.get("parts") if isinstance(content, dict) else None
        if not isinstance(parts, list) or not parts:
            return (
                f"* GenerateContentRequest.contents[{i}].parts: contents.parts must not be empty."
            )
        first_call = True
        for part in parts:
            if not isinstance(part, dict) or "functionCall" not in part:
                continue
            sig = part.get("thoughtSignature")
            if sig is not None and sig != SIGNATURE:
                return "Corrupted thought signature."
            if first_call and model.startswith("gemini-3") and sig is None:
                name = part["functionCall"].get("name")
                return (
                    f"Function call `{name}` in the {i + 1}. content block is missing "
                    "a `thought_signature`. Learn more: "
                    "https://ai.google.dev/gemini-api/docs/thought-signatures"
                )
            first_call = False
    return None


def claude_problem(body: dict[str, Any], method: str) -> str | None:
    """A Claude-on-Vertex body (``rawPredict`` / ``streamRawPredict``): the Vertex
    ``anthropic_version``, no ``model`` (it is in the URL), ``stream`` as the method says."""
    if body.get("anthropic_version") != "vertex-2023-10-16":
        return "anthropic_version: vertex-2023-10-16 required"
    if "model" in body:
        return "model: Extra inputs are not permitted"
    if (method == "streamRawPredict") != (body.get("stream") is True):
        return "stream must match the method"
    return None
