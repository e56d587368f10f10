"""Chat-shaped views of a native Responses exchange (pure, no I/O): what the gateway's
stages see of a ``POST /v1/responses`` relayed as it is to a channel serving OpenAI's
Responses API (``relay/responses.py``, ``docs/responses-api.md``).

* :func:`estimate_chat` — a chat body standing for a request the chat translation cannot
  carry (built-in tools, file inputs, …): the text of ``instructions`` and of every input
  item as messages, ``max_output_tokens`` as ``max_tokens``. The prepare stages and the
  billing reservation read it.
* :func:`apply_prepared` — what the prepare stages changed on the chat view, carried back
  onto the Responses body: the model, ``temperature``/``top_p``/``user``, ``max_tokens``
  (→ ``max_output_tokens``), and the messages they added (system or developer messages →
  ``instructions``, the others → input message items before the request's last item).
  Messages they removed or rewrote in place are not carried back.
* :class:`ResponsesShadow` — the Responses event stream read as OpenAI chat chunks (text,
  reasoning summaries, function calls, the final usage and finish), for the stream meter
  and the chunk filters; :func:`chat_view` — a whole ``response`` object as a chat
  completion, for the response filters.
"""

from __future__ import annotations

from typing import Any

import orjson

from relaygate.errors import RelayError, UpstreamError
from relaygate.providers.base import Usage

__all__ = ["ResponsesShadow", "apply_prepared", "chat_view", "estimate_chat", "usage_of"]

#: keys of an input item whose strings are not text the model reads
_NOT_TEXT = frozenset(
    {"type", "id", "role", "status", "call_id", "image_url", "file_data", "file_id",
     "file_url", "detail", "name", "format", "filename"}
)  # fmt: skip


def _texts(value: Any, out: list[str], depth: int = 0) -> None:
    if depth > 32:
        return
    if isinstance(value, str):
        out.append(value)
    elif isinstance(value, list):
        for v in value:
            _texts(v, out, depth + 1)
    elif isinstance(value, dict):
        for k, v in value.items():
            if k not in _NOT_TEXT:
                _texts(v, out, depth + 1)


def _positive(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return None


def estimate_chat(body: dict[str, Any], conversation: list[dict[str, Any]]) -> dict[str, Any]:
    """A chat body with the request's text (see the module docstring)."""
    messages: list[dict[str, Any]] = []
    instructions = body.get("instructions")
    if isinstance(instructions, str) and instructions:
        messages.append({"role": "system", "content": instructions})
    texts: list[str] = []
    _texts(conversation, texts)
    if texts:
        messages.append({"role": "user", "content": "\n".join(texts)})
    chat: dict[str, Any] = {"model": body.get("model"), "messages": messages}
    limit = _positive(body.get("max_output_tokens"))
    if limit is not None:
        chat["max_tokens"] = limit
    for name in ("temperature", "top_p", "user"):
        if body.get(name) is not None:
            chat[name] = body[name]
    return chat


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    parts: list[str] = []
    _texts(content, parts)
    return "\n".join(parts)


def apply_prepared(
    body: dict[str, Any], before: list[bytes], after: dict[str, Any]
) -> dict[str, Any]:
    """``body`` with what the prepare stages changed on its chat view ``after``;
    ``before``: the view's messages, serialised, as they were before the stages ran."""
    out = dict(body)
    if isinstance(after.get("model"), str) and after["model"] != body.get("model"):
        out["model"] = after["model"]
    for name in ("temperature", "top_p", "user"):
        if name in after and after[name] != body.get(name):
            out[name] = after[name]
    limit = _positive(after.get("max_tokens"))
    if limit is not None and limit != body.get("max_output_tokens"):
        out["max_output_tokens"] = limit
    messages = after.get("messages")
    seen = set(before)
    system: list[str] = []
    items: list[dict[str, Any]] = []
    for msg in messages if isinstance(messages, list) else ():
        if not isinstance(msg, dict) or orjson.dumps(msg) in seen:
            continue
        text = _text_of(msg.get("content"))
        if msg.get("role") in ("system", "developer"):
            system.append(text)
        else:
            role = msg.get("role") if msg.get("role") in ("user", "assistant") else "user"
            kind = "output_text" if role == "assistant" else "input_text"
            items.append(
                {"type": "message", "role": role, "content": [{"type": kind, "text": text}]}
            )
    if system:
        old = body.get("instructions")
        out["instructions"] = "\n\n".join(
            [*system, *([old] if isinstance(old, str) and old else [])]
        )
    if items:
        raw = body.get("input")
        given: list[Any]
        if isinstance(raw, str):
            given = [{"type": "message", "role": "user", "content": raw}]
        else:
            given = list(raw) if isinstance(raw, list) else []
        out["input"] = [*given[:-1], *items, *given[-1:]]
    return out


def usage_of(raw: Any) -> Usage | None:
    """A Responses ``usage`` object as the gateway's usage; None when absent."""
    if not isinstance(raw, dict):
        return None

    def num(obj: Any, name: str) -> int:
        v = obj.get(name) if isinstance(obj, dict) else None
        return v if isinstance(v, int) and not isinstance(v, bool) and v > 0 else 0

    prompt, completion = num(raw, "input_tokens"), num(raw, "output_tokens")
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=prompt + completion,
        cached_tokens=num(raw.get("input_tokens_details"), "cached_tokens"),
        reasoning_tokens=num(raw.get("output_tokens_details"), "reasoning_tokens"),
    )


def _finish(resp: dict[str, Any], calls: bool) -> str:
    if resp.get("status") == "incomplete":
        details = resp.get("incomplete_details")
        reason = details.get("reason") if isinstance(details, dict) else None
        return "content_filter" if reason == "content_filter" else "length"
    return "tool_calls" if calls else "stop"


def chat_view(resp: dict[str, Any]) -> dict[str, Any]:
    """A whole ``response`` object as an OpenAI chat completion (text, reasoning summary,
    function calls, usage)."""
    text: list[str] = []
    reasoning: list[str] = []
    calls: list[dict[str, Any]] = []
    output = resp.get("output")
    for item in output if isinstance(output, list) else ():
        if not isinstance(item, dict):
            continue
        kind = item.get("type")
        if kind == "message":
            for part in item.get("content") or ():
                if isinstance(part, dict) and isinstance(part.get("text"), str):
                    text.append(part["text"])
        elif kind == "reasoning":
            for part in item.get("summary") or ():
                if isinstance(part, dict) and isinstance(part.get("text"), str):
                    reasoning.append(part["text"])
        elif kind == "function_call":
            calls.append({
                "id": str(item.get("call_id") or item.get("id") or ""), "type": "function",
                "function": {"name": str(item.get("name") or ""),
                             "arguments": str(item.get("arguments") or "")},
            })  # fmt: skip
    message: dict[str, Any] = {"role": "assistant", "content": "".join(text) or None}
    if reasoning:
        message["reasoning_content"] = "".join(reasoning)
    if calls:
        message["tool_calls"] = calls
    usage = usage_of(resp.get("usage"))
    return {
        "id": str(resp.get("id") or ""),
        "object": "chat.completion",
        "created": resp.get("created_at") if isinstance(resp.get("created_at"), int) else 0,
        "model": str(resp.get("model") or ""),
        "choices": [{"index": 0, "message": message, "finish_reason": _finish(resp, bool(calls))}],
        "usage": usage.to_openai() if usage is not None else None,
    }


class ResponsesShadow:
    """The Responses event stream as OpenAI chunks (``relay/native_stream.py``
    ``Shadow``); ``response_id`` is the response's id once an event named it."""

    def __init__(self) -> None:
        self.error: RelayError | None = None
        self.done = False
        self.usage: Usage | None = None
        self.response_id: str | None = None
        self._calls: dict[int, int] = {}  # output_index → tool call index

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        obj = {"id": self.response_id or "", "object": "chat.completion.chunk",
               "created": 0, "model": "", "choices": [choice]}  # fmt: skip
        return orjson.dumps(obj)

    def _end(self, resp: dict[str, Any]) -> list[bytes]:
        self.done = True
        self.usage = usage_of(resp.get("usage")) or self.usage
        out = [self._chunk({}, _finish(resp, bool(self._calls)))]
        if self.usage is not None:
            usage = orjson.loads(self._chunk({}))
            usage["choices"] = []
            usage["usage"] = self.usage.to_openai()
            out.append(orjson.dumps(usage))
        return out

    def feed(self, event: str | None, data: bytes) -> list[bytes]:
        if not data.startswith(b"{"):
            return []
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError:
            return []
        if not isinstance(obj, dict):
            return []
        kind = obj.get("type", event)
        resp = obj.get("response")
        if isinstance(resp, dict) and self.response_id is None and isinstance(resp.get("id"), str):
            self.response_id = resp["id"]
        delta = obj.get("delta")
        if kind == "response.output_text.delta" and isinstance(delta, str):
            return [self._chunk({"content": delta})]
        if kind in ("response.reasoning_summary_text.delta", "response.reasoning_text.delta"):
            return [self._chunk({"reasoning_content": delta})] if isinstance(delta, str) else []
        at = obj.get("output_index")
        at = at if isinstance(at, int) else 0
        item = obj.get("item")
        if kind == "response.output_item.added" and isinstance(item, dict):
            if item.get("type") != "function_call":
                return []
            n = self._calls.setdefault(at, len(self._calls))
            call = {"index": n, "id": str(item.get("call_id") or ""), "type": "function",
                    "function": {"name": str(item.get("name") or ""), "arguments": ""}}  # fmt: skip
            return [self._chunk({"tool_calls": [call]})]
        if kind == "response.function_call_arguments.delta" and isinstance(delta, str):
            n = self._calls.setdefault(at, len(self._calls))
            return [self._chunk({"tool_calls": [{"index": n, "function": {"arguments": delta}}]})]
        if kind in ("response.completed", "response.incomplete") and isinstance(resp, dict):
            return self._end(resp)
        if kind == "response.failed" and isinstance(resp, dict):
            self.usage = usage_of(resp.get("usage")) or self.usage
            err = resp.get("error")
            message = err.get("message") if isinstance(err, dict) else None
            self.error = UpstreamError(str(message or "The upstream response failed."))
            return []
        if kind == "error":
            self.error = UpstreamError(str(obj.get("message") or "The upstream stream failed."))
        return []
