"""The vendor emulator's answers as a :class:`Style` shapes them: the SSE event framing, the
reasoning field (``reasoning_content``, ``reasoning``, OpenRouter's and MiniMax's
``reasoning_details``, MiniMax's inline ``<think>``), tool calls (whole, fragmented or Spark's
one object), the whole completion with the vendor's extra keys (Spark's ``code``/``sid``,
Groq's ``x_groq``, MiniMax's ``base_resp``, GLM's ``request_id``) and the stream plan with
usage where the vendor puts it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from relaygate.emulator.base import StreamPlan, split_text
from relaygate.emulator.knobs import Knobs
from relaygate.emulator.openai import _Answer, completion_object
from relaygate.emulator.vendors_styles import Style

__all__ = ["completion", "frame", "inline_think", "reasoning_fields", "stream_plan", "tool_calls"]


def frame(st: Style, obj: Any, eol: bytes) -> bytes:
    """One SSE event as the vendor frames it."""
    return st.event_head + st.data_prefix + orjson.dumps(obj) + eol


def reasoning_fields(st: Style, body: dict[str, Any], text: str) -> dict[str, Any]:
    """The message (or delta) keys carrying reasoning ``text``; none where it is hidden."""
    kind = st.reasoning
    if not text or kind == "hidden":
        return {}
    if kind == "reasoning":
        return {"reasoning": text}
    if kind == "openrouter":
        detail = {"type": "reasoning.text", "text": text, "format": "unknown", "index": 0}
        return {"reasoning": text, "reasoning_details": [detail]}
    if kind == "minimax":
        if body.get("reasoning_split") is not True:
            return {}  # inline <think> tags instead (see inline_think)
        detail = {
            "type": "reasoning.text",
            "id": "reasoning-text-1",
            "format": "MiniMax-response-v1",
            "index": 0,
            "text": text,
        }
        return {"reasoning_details": [detail]}
    return {"reasoning_content": text}


def inline_think(st: Style, body: dict[str, Any], ans: _Answer) -> str:
    """MiniMax's ``<think>…</think>`` before the content, unless ``reasoning_split``."""
    if st.reasoning == "minimax" and ans.reasoning and body.get("reasoning_split") is not True:
        return f"<think>\n{ans.reasoning}\n</think>\n\n"
    return ""


def tool_calls(st: Style, ans: _Answer, *, stream: bool) -> Any:
    """The answer's tool call as a list, or (Spark) one object without an id."""
    call: dict[str, Any] = {
        "id": ans.tool_id,
        "type": "function",
        "function": {"name": ans.tool_name, "arguments": ans.tool_args},
    }
    if st.tools == "object":
        del call["id"]
        return call
    if stream:
        call["index"] = 0
    return [call]


def completion(
    st: Style,
    body: dict[str, Any],
    ans: _Answer,
    cid: str,
    created: int,
    model: str,
    usage: dict[str, Any] | None,
    ids: Callable[[str], str],
) -> dict[str, Any]:
    """The whole (non-stream) answer."""
    content = inline_think(st, body, ans) + ans.text
    msg: dict[str, Any] = {"role": "assistant", "content": content or None}
    msg.update(reasoning_fields(st, body, ans.reasoning))
    if ans.tool_name:
        msg["tool_calls"] = tool_calls(st, ans, stream=False)
    choice: dict[str, Any] = {"index": 0, "message": msg, "finish_reason": ans.finish}
    obj = completion_object(cid, created, model, choice, usage)
    if st.errors == "spark":
        del choice["finish_reason"]
        return {
            "code": 0,
            "message": "Success",
            "sid": ids("cha"),
            "choices": [choice],
            "usage": usage,
        }
    if st.name == "groq":
        obj.update(usage_breakdown=None, x_groq={"id": ids("req_")}, service_tier="on_demand")
    elif st.errors == "minimax":
        obj.update(
            input_sensitive=False,
            output_sensitive=False,
            base_resp={"status_code": 0, "status_msg": ""},
        )
    elif st.name == "glm":
        obj["request_id"] = cid
    return obj


def stream_plan(
    st: Style,
    body: dict[str, Any],
    ans: _Answer,
    knobs: Knobs,
    *,
    cid: str,
    created: int,
    model: str,
    include: bool,
    last_usage: dict[str, Any] | None,
    ids: Callable[[str], str],
    eol: bytes,
    error_frame: Callable[[], bytes],
) -> StreamPlan:
    """The stream: role chunk, reasoning, content, tool call, usage where the vendor puts it
    (``include`` is the request's ``stream_options.include_usage``), ``[DONE]``."""
    spark = st.errors == "spark"
    minimax = st.errors == "minimax"
    if spark:
        base: dict[str, Any] = {
            "code": 0,
            "message": "Success",
            "sid": cid,
            "id": cid,
            "created": created,
        }
    else:
        base = {
            "id": cid,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
        }
    if minimax:
        base["usage"] = {"total_tokens": 0, "total_characters": 0}
        base["input_sensitive"] = False
        base["output_sensitive"] = False

    def chunk(delta: dict[str, Any], finish: str | None = None, **top: Any) -> dict[str, Any]:
        choice: dict[str, Any] = {"index": 0, "delta": delta}
        if not spark and (finish is not None or st.name not in ("glm", "xai")):
            choice["finish_reason"] = finish
        choice.update(st.choice_extra)
        return {**base, "choices": [choice], **top}

    usage = last_usage or {}
    head = frame(st, chunk({"role": "assistant", "content": ""}), eol)
    parts: list[dict[str, Any]] = []
    role = {"role": ""} if minimax else {}
    for piece in split_text(ans.reasoning, knobs.chunks):
        fields = reasoning_fields(st, body, piece)
        if fields:
            parts.append(chunk({**role, **fields}))
    think = inline_think(st, body, ans)
    for piece in split_text(think + ans.text, knobs.chunks):
        parts.append(chunk({**role, "content": piece}))
    if ans.tool_name:
        if st.tools == "fragmented":
            head_call = {
                "index": 0,
                "id": ans.tool_id,
                "type": "function",
                "function": {"name": ans.tool_name, "arguments": ""},
            }
            parts.append(chunk({"tool_calls": [head_call]}))
            for piece in split_text(ans.tool_args, knobs.chunks):
                frag = {"index": 0, "function": {"arguments": piece}}
                parts.append(chunk({"tool_calls": [frag]}))
        else:
            parts.append(
                chunk({"role": "assistant", "tool_calls": tool_calls(st, ans, stream=True)})
            )
    if not parts:
        parts.append(chunk({"content": ""}))
    if st.usage == "last_content":
        parts[-1] = {**parts[-1], "usage": usage}
    if st.usage == "groq" and "x_groq" not in parts[0]:
        parts[0] = {**parts[0], "x_groq": {"id": ids("req_")}}
    tail: list[dict[str, Any]] = []
    if st.usage == "finish_chunk":
        tail.append(chunk({"role": "assistant", "content": ""}, ans.finish, usage=usage))
    elif st.usage == "in_choice":
        fin = chunk({}, ans.finish)
        fin["choices"][0]["usage"] = usage
        tail.append(fin)
    elif st.usage == "groq":
        tail.append(chunk({}, ans.finish, x_groq={"id": "req", "usage": usage}, usage=usage))
        if include:
            tail.append({**base, "choices": [], "usage": usage, "service_tier": "on_demand"})
    elif st.usage == "openrouter":
        tail.append(chunk({"content": "", "role": "assistant"}, ans.finish))
        tail.append(chunk({"content": "", "role": "assistant"}, ans.finish, usage=usage))
    elif st.usage == "final_frame":
        tail.append(chunk({}, ans.finish))
        final = completion(st, body, ans, cid, created, model, last_usage, ids)
        final["choices"][0]["message"]["name"] = "MiniMax AI"
        tail.append(final)
    elif not spark:
        tail.append(chunk({}, ans.finish))
        if include:
            tail.append({**base, "choices": [], "usage": usage})
    return StreamPlan(
        head,
        [frame(st, p, eol) for p in parts],
        b"".join(frame(st, t, eol) for t in tail) + b"data: [DONE]" + eol,
        error_frame(),
    )
