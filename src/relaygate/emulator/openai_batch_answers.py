"""The answers a batch of the OpenAI emulator gives to each of its requests.

Deterministic, with ``count_tokens`` (``ceil(characters / 4)``) and the ``reply`` knob:

* ``/v1/chat/completions``: ``prompt_tokens = sum over messages of (4 + tokens of the text)``
  (as the chat endpoint counts text messages), ``completion_tokens = tokens of the reply``.
* ``/v1/responses``: ``input_tokens`` = tokens of ``instructions`` + tokens of a string
  ``input`` (or the messages sum above), ``output_tokens`` = tokens of the reply.
* ``/v1/completions``: ``prompt_tokens`` = tokens of the prompt, ``completion_tokens`` = reply.
* ``/v1/embeddings``: ``prompt_tokens`` = tokens of the inputs (the emulator's vectors).
* ``/v1/moderations``: nothing flagged, no usage.
* images and videos: a 400 line (the emulator does not render them in batches).

Each count is at least 1. A body whose ``model`` is ``error-NNN`` is answered with status
NNN and an OpenAI error body; a body without ``model`` with 400.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

from relaygate.emulator.base import count_tokens, embedding_vector
from relaygate.emulator.knobs import Knobs

__all__ = ["ENDPOINTS", "answer"]

#: the endpoints a batch may name (``CreateBatchRequest.endpoint``)
ENDPOINTS = (
    "/v1/responses",
    "/v1/chat/completions",
    "/v1/embeddings",
    "/v1/completions",
    "/v1/moderations",
    "/v1/images/generations",
    "/v1/images/edits",
    "/v1/videos",
)
_TRIGGER = re.compile(r"^error-(\d{3})$")

Tokens = dict[str, int]
Answer = tuple[int, dict[str, Any], Tokens]


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            str(p.get("text", "")) for p in content if isinstance(p, dict) and "text" in p
        )
    return ""


def _messages_tokens(messages: Any) -> int:
    if not isinstance(messages, list):
        return 0
    return sum(4 + count_tokens(_text(m.get("content"))) for m in messages if isinstance(m, dict))


def _error(status: int, message: str, param: str | None = None) -> Answer:
    kind = "server_error" if status >= 500 else "invalid_request_error"
    err = {"message": message, "type": kind, "param": param, "code": None}
    return status, {"error": err}, {}


def _tokens(inp: int, out: int) -> Tokens:
    return {"input_tokens": inp, "output_tokens": out, "reasoning_tokens": 0}


def answer(endpoint: str, body: dict[str, Any], knobs: Knobs, ids: Callable[[str], str]) -> Answer:
    """``(status, body, tokens)`` for one batched request (tokens summed into ``usage``)."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        return _error(400, "you must provide a model parameter", "model")
    trigger = _TRIGGER.match(model)
    if trigger and 400 <= int(trigger.group(1)) <= 599:
        return _error(int(trigger.group(1)), "Emulated error for this request.")
    created = int(time.time())
    reply = knobs.reply
    out = max(count_tokens(reply), 1)
    if endpoint == "/v1/chat/completions":
        prompt = max(_messages_tokens(body.get("messages")), 1)
        message: dict[str, Any] = {
            "role": "assistant",
            "content": reply,
            "refusal": None,
            "annotations": [],
        }
        usage: dict[str, Any] = {"prompt_tokens": prompt, "completion_tokens": out}
        usage["total_tokens"] = prompt + out
        usage["prompt_tokens_details"] = {"cached_tokens": 0, "audio_tokens": 0}
        usage["completion_tokens_details"] = {"reasoning_tokens": 0, "audio_tokens": 0}
        choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": "stop"}
        obj: dict[str, Any] = {
            "id": ids("chatcmpl-"),
            "object": "chat.completion",
            "created": created,
        }
        obj.update(model=model, choices=[choice], usage=usage, service_tier="default")
        obj["system_fingerprint"] = "fp_emulator"
        return 200, obj, _tokens(prompt, out)
    if endpoint == "/v1/responses":
        inp = body.get("input")
        prompt = count_tokens(inp) if isinstance(inp, str) else _messages_tokens(inp)
        prompt = max(prompt + count_tokens(str(body.get("instructions") or "")), 1)
        text: dict[str, Any] = {"type": "output_text", "text": reply, "annotations": []}
        item: dict[str, Any] = {
            "id": ids("msg_"),
            "type": "message",
            "status": "completed",
            "role": "assistant",
        }
        item["content"] = [text]
        usage = {
            "input_tokens": prompt,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": out,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": prompt + out,
        }
        obj = {"id": ids("resp_"), "object": "response", "created_at": created}
        obj.update(status="completed", model=model, output=[item], usage=usage, error=None)
        return 200, obj, _tokens(prompt, out)
    if endpoint == "/v1/completions":
        prompt = max(count_tokens(_text(body.get("prompt"))), 1)
        choice = {"text": reply, "index": 0, "logprobs": None, "finish_reason": "stop"}
        usage = {"prompt_tokens": prompt, "completion_tokens": out, "total_tokens": prompt + out}
        obj = {"id": ids("cmpl-"), "object": "text_completion", "created": created}
        obj.update(model=model, choices=[choice], usage=usage)
        return 200, obj, _tokens(prompt, out)
    if endpoint == "/v1/embeddings":
        raw = body.get("input")
        items = raw if isinstance(raw, list) else [raw]
        texts = [x if isinstance(x, str) else str(x) for x in items if x is not None]
        if not texts:
            return _error(400, "'input' is a required property", "input")
        dim = body.get("dimensions") if isinstance(body.get("dimensions"), int) else None
        data = [
            {
                "object": "embedding",
                "index": i,
                "embedding": embedding_vector(t, dim or knobs.embedding_dim),
            }
            for i, t in enumerate(texts)
        ]
        tokens = max(sum(count_tokens(t) for t in texts), 1)
        usage = {"prompt_tokens": tokens, "total_tokens": tokens}
        return (
            200,
            {"object": "list", "data": data, "model": model, "usage": usage},
            _tokens(tokens, 0),
        )
    if endpoint == "/v1/moderations":
        result = {"flagged": False, "categories": {}, "category_scores": {}}
        return 200, {"id": ids("modr-"), "model": model, "results": [result]}, {}
    return _error(400, f"The emulator does not answer batched {endpoint} requests.")
