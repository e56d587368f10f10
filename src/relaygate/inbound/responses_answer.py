"""A chat-completions answer as a Responses API answer: the whole completion as a
``response`` object (:func:`to_response`), and the chat stream as the Responses events
(:class:`ResponsesStream`), in the shapes OpenAI's own ``/v1/responses`` sends
(``docs/responses-api.md``).

Output items, in order: a ``reasoning`` item (from ``reasoning_content``), a ``message``
item with one ``output_text`` part, a ``function_call`` item per tool call. ``status`` is
``incomplete`` (``incomplete_details.reason`` ``max_output_tokens``) when the chat answer
stopped for its length, ``completed`` otherwise.
"""

from __future__ import annotations

import os
import time
from typing import Any

import orjson

__all__ = ["ResponsesStream", "new_id", "response_shell", "response_usage", "to_response"]


def new_id(prefix: str) -> str:
    return prefix + os.urandom(24).hex()


def response_shell(
    resp_id: str, body: dict[str, Any], model: str, created: int | None = None
) -> dict[str, Any]:
    """A ``response`` object with the request's settings, no output yet (in progress)."""
    text = body.get("text") if isinstance(body.get("text"), dict) else {"format": {"type": "text"}}
    reasoning = body.get("reasoning")
    return {
        "id": resp_id,
        "object": "response",
        "created_at": int(time.time()) if created is None else created,
        "status": "in_progress",
        "background": False,
        "error": None,
        "incomplete_details": None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "model": model,
        "output": [],
        "parallel_tool_calls": body.get("parallel_tool_calls", True),
        "previous_response_id": body.get("previous_response_id"),
        "reasoning": reasoning
        if isinstance(reasoning, dict)
        else {"effort": None, "summary": None},
        "store": body.get("store", True) is not False,
        "temperature": body.get("temperature", 1.0),
        "text": text,
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": body.get("tools") or [],
        "top_p": body.get("top_p", 1.0),
        "truncation": "disabled",
        "usage": None,
        "user": body.get("user"),
        "metadata": body.get("metadata") or {},
    }


def response_usage(raw: Any) -> dict[str, Any] | None:
    """Chat ``usage`` in the Responses shape."""
    if not isinstance(raw, dict):
        return None

    def num(obj: Any, name: str) -> int:
        v = obj.get(name) if isinstance(obj, dict) else None
        return v if isinstance(v, int) and not isinstance(v, bool) else 0

    prompt, completion = num(raw, "prompt_tokens"), num(raw, "completion_tokens")
    return {
        "input_tokens": prompt,
        "input_tokens_details": {
            "cached_tokens": num(raw.get("prompt_tokens_details"), "cached_tokens")
        },
        "output_tokens": completion,
        "output_tokens_details": {
            "reasoning_tokens": num(raw.get("completion_tokens_details"), "reasoning_tokens")
        },
        "total_tokens": prompt + completion,
    }


def _reasoning_item(text: str) -> dict[str, Any]:
    return {
        "id": new_id("rs_"),
        "type": "reasoning",
        "summary": [{"type": "summary_text", "text": text}],
    }


def _message_item(text: str, status: str = "completed") -> dict[str, Any]:
    return {
        "id": new_id("msg_"),
        "type": "message",
        "status": status,
        "role": "assistant",
        "content": [{"type": "output_text", "annotations": [], "logprobs": [], "text": text}],
    }


def _call_item(
    call_id: str, name: str, arguments: str, status: str = "completed"
) -> dict[str, Any]:
    return {
        "id": new_id("fc_"),
        "type": "function_call",
        "status": status,
        "arguments": arguments,
        "call_id": call_id,
        "name": name,
    }


def _finish(resp: dict[str, Any], finish_reason: Any) -> None:
    if finish_reason == "length":
        resp["status"] = "incomplete"
        resp["incomplete_details"] = {"reason": "max_output_tokens"}
    elif finish_reason == "content_filter":
        resp["status"] = "incomplete"
        resp["incomplete_details"] = {"reason": "content_filter"}
    else:
        resp["status"] = "completed"
    resp["completed_at"] = int(time.time())


def to_response(
    completion: dict[str, Any], resp_id: str, body: dict[str, Any], model: str
) -> dict[str, Any]:
    """The ``response`` object for a whole chat ``completion`` of request ``body``."""
    resp = response_shell(resp_id, body, model, completion.get("created"))
    choices = completion.get("choices")
    choice = choices[0] if isinstance(choices, list) and choices else {}
    msg = choice.get("message") if isinstance(choice, dict) else None
    msg = msg if isinstance(msg, dict) else {}
    output: list[dict[str, Any]] = []
    reasoning = msg.get("reasoning_content")
    if isinstance(reasoning, str) and reasoning:
        output.append(_reasoning_item(reasoning))
    content = msg.get("content")
    if isinstance(content, str) and content:
        output.append(_message_item(content))
    for call in msg.get("tool_calls") or ():
        fn = call.get("function") if isinstance(call, dict) else None
        if isinstance(fn, dict):
            args = fn.get("arguments")
            output.append(
                _call_item(
                    str(call.get("id") or new_id("call_")),
                    str(fn.get("name") or ""),
                    args if isinstance(args, str) else "",
                )
            )
    resp["output"] = output
    resp["usage"] = response_usage(completion.get("usage"))
    _finish(resp, choice.get("finish_reason") if isinstance(choice, dict) else None)
    return resp


def _event(obj: dict[str, Any]) -> bytes:
    return b"event: " + str(obj["type"]).encode() + b"\ndata: " + orjson.dumps(obj) + b"\n\n"


class ResponsesStream:
    """Chat chunk payloads in, Responses SSE frames out (one instance per stream).

    :meth:`feed` takes a batch of chunk payloads (an ``{"error": …}`` payload too: it ends
    the stream with an ``error`` event); :meth:`finish` closes the open items and sends
    ``response.completed`` (or ``response.incomplete``) with the usage. ``response`` is the
    final object once finished (what the gateway keeps for ``previous_response_id``)."""

    def __init__(self, resp_id: str, body: dict[str, Any], model: str) -> None:
        self.response = response_shell(resp_id, body, model)
        self._seq = 0
        self._started = False
        self._failed = False
        self._output: list[dict[str, Any]] = []
        self._open: dict[str, Any] | None = None  # the item being streamed
        self._calls: dict[int, dict[str, Any]] = {}  # chat tool-call index -> item
        self._usage: dict[str, Any] | None = None
        self._finish_reason: Any = None

    def _emit(self, out: list[bytes], obj: dict[str, Any]) -> None:
        obj["sequence_number"] = self._seq
        self._seq += 1
        out.append(_event(obj))

    def _start(self, out: list[bytes]) -> None:
        if self._started:
            return
        self._started = True
        self._emit(out, {"type": "response.created", "response": dict(self.response)})
        self._emit(out, {"type": "response.in_progress", "response": dict(self.response)})

    def _open_item(self, out: list[bytes], item: dict[str, Any]) -> None:
        self._close_item(out)
        self._output.append(item)
        self._open = item
        index = len(self._output) - 1
        shown = dict(item)
        if item["type"] == "message":
            shown["content"] = []
        elif item["type"] == "reasoning":
            shown["summary"] = []
        self._emit(
            out, {"type": "response.output_item.added", "output_index": index, "item": shown}
        )
        if item["type"] == "message":
            self._emit(out, {
                "type": "response.content_part.added", "item_id": item["id"],
                "output_index": index, "content_index": 0,
                "part": {"type": "output_text", "annotations": [], "logprobs": [], "text": ""},
            })  # fmt: skip

    def _close_item(self, out: list[bytes]) -> None:
        item = self._open
        if item is None:
            return
        self._open = None
        index = self._output.index(item)
        item["status"] = "completed"
        if item["type"] == "message":
            part = item["content"][0]
            base = {"item_id": item["id"], "output_index": index, "content_index": 0}
            self._emit(out, {"type": "response.output_text.done", **base, "text": part["text"],
                             "logprobs": []})  # fmt: skip
            self._emit(out, {"type": "response.content_part.done", **base, "part": part})
        elif item["type"] == "function_call":
            self._emit(out, {
                "type": "response.function_call_arguments.done", "item_id": item["id"],
                "output_index": index, "arguments": item["arguments"],
            })  # fmt: skip
        self._emit(out, {"type": "response.output_item.done", "output_index": index, "item": item})

    def _text(self, out: list[bytes], delta: str) -> None:
        if self._open is None or self._open["type"] != "message":
            self._open_item(out, _message_item("", "in_progress"))
        item = self._open
        assert item is not None
        item["content"][0]["text"] += delta
        self._emit(out, {
            "type": "response.output_text.delta", "item_id": item["id"],
            "output_index": len(self._output) - 1, "content_index": 0, "delta": delta,
            "logprobs": [],
        })  # fmt: skip

    def _reasoning(self, out: list[bytes], delta: str) -> None:
        if self._open is None or self._open["type"] != "reasoning":
            self._open_item(out, _reasoning_item(""))
        item = self._open
        assert item is not None
        item["summary"][0]["text"] += delta

    def _tool(self, out: list[bytes], call: dict[str, Any]) -> None:
        index = call.get("index", 0)
        got = call.get("function")
        fn: dict[str, Any] = got if isinstance(got, dict) else {}
        item = self._calls.get(index)
        if item is None:
            item = _call_item(
                str(call.get("id") or new_id("call_")), str(fn.get("name") or ""), "",
                "in_progress",
            )  # fmt: skip
            self._calls[index] = item
            self._open_item(out, item)
        args = fn.get("arguments")
        if isinstance(args, str) and args:
            item["arguments"] += args
            self._emit(out, {
                "type": "response.function_call_arguments.delta", "item_id": item["id"],
                "output_index": self._output.index(item), "delta": args,
            })  # fmt: skip

    def feed(self, payloads: list[bytes]) -> bytes:
        out: list[bytes] = []
        for raw in payloads:
            if self._failed:
                break
            try:
                chunk = orjson.loads(raw)
            except orjson.JSONDecodeError:
                continue
            if not isinstance(chunk, dict):
                continue
            self._start(out)
            if isinstance(chunk.get("error"), dict):
                self._fail(out, chunk["error"])
                break
            if isinstance(chunk.get("usage"), dict):
                self._usage = response_usage(chunk["usage"])
            for choice in chunk.get("choices") or ():
                if not isinstance(choice, dict):
                    continue
                raw_delta = choice.get("delta")
                delta: dict[str, Any] = raw_delta if isinstance(raw_delta, dict) else {}
                if isinstance(delta.get("reasoning_content"), str) and delta["reasoning_content"]:
                    self._reasoning(out, delta["reasoning_content"])
                if isinstance(delta.get("content"), str) and delta["content"]:
                    self._text(out, delta["content"])
                for call in delta.get("tool_calls") or ():
                    if isinstance(call, dict):
                        self._tool(out, call)
                if choice.get("finish_reason") is not None:
                    self._finish_reason = choice["finish_reason"]
        return b"".join(out)

    def _fail(self, out: list[bytes], error: dict[str, Any]) -> None:
        self._failed = True
        self.response["status"] = "failed"
        self.response["error"] = {
            "code": str(error.get("code") or "server_error"),
            "message": str(error.get("message") or "The upstream stream failed."),
        }
        self._emit(out, {
            "type": "error", "code": error.get("code"), "message": error.get("message"),
            "param": error.get("param"),
        })  # fmt: skip
        self._emit(out, {"type": "response.failed", "response": self.response})

    def finish(self) -> bytes:
        out: list[bytes] = []
        if self._failed:
            return b""
        self._start(out)
        self._close_item(out)
        resp = self.response
        resp["output"] = self._output
        resp["usage"] = self._usage
        _finish(resp, self._finish_reason)
        kind = "response.completed" if resp["status"] == "completed" else "response.incomplete"
        self._emit(out, {"type": kind, "response": resp})
        return b"".join(out)
