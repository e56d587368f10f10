"""Anthropic Messages API emulator (``POST /v1/messages``)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, ClassVar

import orjson
from aiohttp import web

from relaygate.emulator.base import (
    EarlyResponse,
    Provider,
    StreamPlan,
    count_tokens,
    sample_arguments,
    split_text,
)
from relaygate.emulator.knobs import Knobs

__all__ = ["AnthropicEmulator"]

_ERROR_TYPES = {
    400: ("invalid_request_error", "Invalid request (emulated error)."),
    401: ("authentication_error", "invalid x-api-key"),
    403: ("permission_error", "Your API key does not have permission to use this resource."),
    404: ("not_found_error", "Not found"),
    413: ("request_too_large", "Request exceeds the maximum allowed number of bytes."),
    429: (
        "rate_limit_error",
        "This request would exceed the rate limit for your organization (emulated).",
    ),
    500: ("api_error", "Internal server error"),
    529: ("overloaded_error", "Overloaded"),
}
_SIGNATURE = "RW11bGF0ZWQgdGhpbmtpbmcgc2lnbmF0dXJlIGZyb20gcmVsYXlnYXRl"
_PING = b'event: ping\ndata: {"type": "ping"}\n\n'
_MIDSTREAM_ERROR = (
    b"event: error\n"
    b'data: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}\n\n'
)
_THINKING_RULE = (
    "messages.{i}.content.0.type: Expected `thinking` or `redacted_thinking`, but found "
    "`{found}`. When `thinking` is enabled, a final `assistant` message must start with a "
    "thinking block (preceeding the lastmost set of `tool_use` and `tool_result` blocks). "
    "We recommend you include thinking blocks from previous turns. To avoid this "
    "requirement, disable `thinking`. Please consult our documentation at "
    "https://docs.claude.com/en/docs/build-with-claude/extended-thinking"
)
_MODELS = (
    ("claude-sonnet-4-20250514", "Claude Sonnet 4", "2025-05-22T00:00:00Z"),
    ("claude-3-5-haiku-20241022", "Claude Haiku 3.5", "2024-10-22T00:00:00Z"),
)


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts: list[str] = []
        for block in content:
            if not isinstance(block, dict):
                continue
            if isinstance(block.get("text"), str):
                parts.append(block["text"])
            elif block.get("type") == "tool_result":
                parts.append(_text_of(block.get("content")))
            elif block.get("type") == "tool_use":
                parts.append(json.dumps(block.get("input")))
        return "".join(parts)
    return ""


def _input_tokens(body: dict[str, Any]) -> int:
    total = count_tokens(_text_of(body.get("system")))
    for msg in body.get("messages") or ():
        if isinstance(msg, dict):
            content = msg.get("content")
            total += 3 + count_tokens(_text_of(content))
            if isinstance(content, list):
                total += 85 * sum(
                    1 for b in content if isinstance(b, dict) and b.get("type") == "image"
                )
    tools = body.get("tools")
    if isinstance(tools, list):
        total += 20 * len(tools)
    return max(total, 1)


@dataclass(slots=True)
class _Reply:
    thinking: str = ""
    text: str = ""
    tool_id: str = ""
    tool_name: str = ""
    tool_input: dict[str, Any] = field(default_factory=dict)
    stop_reason: str = "end_turn"
    stop_sequence: str | None = None
    input_tokens: int = 1
    output_tokens: int = 1


class AnthropicEmulator(Provider):
    name: ClassVar[str] = "anthropic"
    base_path: ClassVar[str] = ""

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/messages", self.api(self.messages))
        app.router.add_post("/v1/messages/count_tokens", self.api(self.count_tokens))
        app.router.add_get("/v1/models", self.api(self.models))

    # -- errors / auth --------------------------------------------------------------------
    def error(
        self, status: int, message: str | None = None, *, param: str | None = None
    ) -> web.Response:
        default = ("api_error", "Internal server error")
        if status < 500:
            default = ("invalid_request_error", "Invalid request (emulated error).")
        kind, msg = _ERROR_TYPES.get(status, default)
        rid = self.core.ids("req_")
        payload = {"type": "error", "error": {"type": kind, "message": message or msg}}
        payload["request_id"] = rid
        return self.json_response(payload, status, {"request-id": rid})

    def invalid_json(self) -> web.Response:
        return self.error(400, "There was an error parsing the body as JSON.")

    async def not_found(self, request: web.Request, knobs: Knobs, body: Any) -> web.Response:
        return self.error(404, "Not Found")

    def check_request(self, request: web.Request, knobs: Knobs) -> None:
        if knobs.require_auth:
            key = request.headers.get("x-api-key", "")
            if not key:
                raise EarlyResponse(self.error(401, "x-api-key header is required"))
            if knobs.api_key is not None and key != knobs.api_key:
                raise EarlyResponse(self.error(401, "invalid x-api-key"))
        if not request.headers.get("anthropic-version"):
            raise EarlyResponse(self.error(400, "anthropic-version: header is required"))

    # -- messages -------------------------------------------------------------------------
    def _validate(self, body: Any) -> tuple[dict[str, Any], str]:
        if not isinstance(body, dict):
            raise EarlyResponse(self.error(400, "The request body must be a JSON object."))
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise EarlyResponse(self.error(400, "model: Field required"))
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise EarlyResponse(self.error(400, "messages: Field required"))
        return body, model

    def _check_thinking(self, body: dict[str, Any]) -> None:
        """Anthropic's rules for thinking blocks sent back in the conversation.

        With thinking enabled, the last assistant message that holds ``tool_use``
        must start with a ``thinking``/``redacted_thinking`` block; a thinking
        block's ``signature`` must be one this server issued.
        """
        messages = body["messages"]
        for i, msg in enumerate(messages):
            content = msg.get("content") if isinstance(msg, dict) else None
            for j, block in enumerate(content if isinstance(content, list) else ()):
                if (
                    isinstance(block, dict)
                    and block.get("type") == "thinking"
                    and block.get("signature") != _SIGNATURE
                ):
                    raise EarlyResponse(
                        self.error(
                            400,
                            f"messages.{i}.content.{j}: Invalid `signature` in `thinking` block",
                        )
                    )
        thinking = body.get("thinking")
        if not (isinstance(thinking, dict) and thinking.get("type") == "enabled"):
            return
        budget = thinking.get("budget_tokens")
        if not isinstance(budget, int) or budget < 1024:
            raise EarlyResponse(
                self.error(
                    400,
                    "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024",
                )
            )
        if body["max_tokens"] <= budget:
            raise EarlyResponse(
                self.error(400, "`max_tokens` must be greater than `thinking.budget_tokens`.")
            )
        for i in range(len(messages) - 1, -1, -1):
            msg = messages[i]
            if not isinstance(msg, dict) or msg.get("role") != "assistant":
                continue
            content = msg.get("content")
            blocks = content if isinstance(content, list) else [{"type": "text"}]
            has_tool_use = any(isinstance(b, dict) and b.get("type") == "tool_use" for b in blocks)
            first = blocks[0].get("type") if blocks and isinstance(blocks[0], dict) else "text"
            if has_tool_use and first not in ("thinking", "redacted_thinking"):
                raise EarlyResponse(self.error(400, _THINKING_RULE.format(i=i, found=first)))
            return

    def _compose(self, body: dict[str, Any], knobs: Knobs) -> _Reply:
        reply = _Reply(input_tokens=_input_tokens(body))
        last = body["messages"][-1]
        content = last.get("content") if isinstance(last, dict) else None
        results = [
            b
            for b in (content if isinstance(content, list) else ())
            if isinstance(b, dict) and b.get("type") == "tool_result"
        ]
        tools = body.get("tools")
        choice = body.get("tool_choice")
        choice_type = choice.get("type") if isinstance(choice, dict) else None
        thinking = body.get("thinking")
        if isinstance(thinking, dict) and thinking.get("type") == "enabled":
            reply.thinking = knobs.reasoning
        if results:
            reply.text = "The tool returned: " + "".join(
                _text_of(r.get("content")) for r in results
            )
        elif isinstance(tools, list) and tools and choice_type != "none":
            named = [t for t in tools if isinstance(t, dict) and isinstance(t.get("name"), str)]
            tool: dict[str, Any] = named[0] if named else {"name": "tool"}
            if choice_type == "tool":
                tool = next((t for t in named if t["name"] == choice.get("name")), tool)  # type: ignore[union-attr]
            reply.tool_name = tool["name"]
            reply.tool_input = sample_arguments(tool.get("input_schema"))
            reply.tool_id = self.core.ids("toolu_")
            reply.text = f"I'll use the {reply.tool_name} tool."
            reply.stop_reason = "tool_use"
        else:
            reply.text = knobs.reply
        if not reply.tool_name:
            stops = body.get("stop_sequences")
            for stop in stops if isinstance(stops, list) else ():
                if isinstance(stop, str) and stop and stop in reply.text:
                    reply.text = reply.text[: reply.text.index(stop)]
                    reply.stop_reason = "stop_sequence"
                    reply.stop_sequence = stop
                    break
            limit = body.get("max_tokens")
            if isinstance(limit, int) and count_tokens(reply.text) > limit:
                reply.text = reply.text[: max(limit, 0) * 4]
                reply.stop_reason = "max_tokens"
                reply.stop_sequence = None
        reply.output_tokens = max(
            1,
            count_tokens(reply.thinking)
            + count_tokens(reply.text)
            + (count_tokens(json.dumps(reply.tool_input)) + 10 if reply.tool_name else 0),
        )
        return reply

    def _usage(self, reply: _Reply, output_tokens: int) -> dict[str, Any]:
        return {
            "input_tokens": reply.input_tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
            "output_tokens": output_tokens,
            "service_tier": "standard",
        }

    async def messages(self, request: web.Request, knobs: Knobs, body: Any) -> web.StreamResponse:
        body, model = self._validate(body)
        if not isinstance(body.get("max_tokens"), int):
            raise EarlyResponse(self.error(400, "max_tokens: Field required"))
        self._check_thinking(body)
        trigger = await self.gate(knobs, model)
        reply = self._compose(body, knobs)
        mid = self.core.ids("msg_")
        headers = {"request-id": self.core.ids("req_")}
        if body.get("stream") is True:
            plan = self._plan(reply, knobs, mid, model)
            return await self.send_stream(request, knobs, plan, trigger, headers)
        content: list[dict[str, Any]] = []
        if reply.thinking:
            content.append(
                {"type": "thinking", "thinking": reply.thinking, "signature": _SIGNATURE}
            )
        if reply.text or not reply.tool_name:
            content.append({"type": "text", "text": reply.text})
        if reply.tool_name:
            content.append(
                {
                    "type": "tool_use",
                    "id": reply.tool_id,
                    "name": reply.tool_name,
                    "input": reply.tool_input,
                    "caller": {"type": "direct"},  # recorded: tool_use blocks name their caller
                }
            )
        payload = {
            "model": model,
            "id": mid,
            "type": "message",
            "role": "assistant",
            "content": content,
            "stop_reason": reply.stop_reason,
            "stop_sequence": reply.stop_sequence,
            "usage": self._usage(reply, reply.output_tokens),
        }
        return await self.send_json(request, knobs, payload, headers)

    def _plan(self, reply: _Reply, knobs: Knobs, mid: str, model: str) -> StreamPlan:
        counter = 0

        def event(name: str, obj: dict[str, Any]) -> bytes:
            # Anthropic pads its JSON with spaces before the closing brace.
            nonlocal counter
            counter += 1
            data = orjson.dumps(obj)
            pad = b" " * (1 + (counter * 5) % 14)
            return b"event: " + name.encode() + b"\ndata: " + data[:-1] + pad + b"}\n\n"

        # (content_block for content_block_start, deltas, trailing deltas)
        blocks: list[tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]] = []
        n = knobs.chunks
        if reply.thinking:
            blocks.append(
                (
                    {"type": "thinking", "thinking": ""},
                    [
                        {"type": "thinking_delta", "thinking": p}
                        for p in split_text(reply.thinking, n)
                    ],
                    [{"type": "signature_delta", "signature": _SIGNATURE}],
                )
            )
        if reply.text or not reply.tool_name:
            blocks.append(
                (
                    {"type": "text", "text": ""},
                    [{"type": "text_delta", "text": p} for p in split_text(reply.text, n)],
                    [],
                )
            )
        if reply.tool_name:
            args = json.dumps(reply.tool_input)
            blocks.append(
                (
                    {
                        "type": "tool_use",
                        "id": reply.tool_id,
                        "name": reply.tool_name,
                        "input": {},
                        "caller": {"type": "direct"},
                    },
                    [{"type": "input_json_delta", "partial_json": p} for p in split_text(args, n)],
                    [],
                )
            )

        message: dict[str, Any] = {
            "model": model,
            "id": mid,
            "type": "message",
            "role": "assistant",
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": self._usage(reply, 1),
        }
        head = event("message_start", {"type": "message_start", "message": message})
        chunks: list[bytes] = []
        pending = b""
        for index, (start, deltas, trailing) in enumerate(blocks):
            opened = event(
                "content_block_start",
                {"type": "content_block_start", "index": index, "content_block": start},
            )
            if index == 0:
                head += opened + _PING
            else:
                pending += opened
            if start["type"] == "tool_use":
                pending += event(
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": index,
                        "delta": {"type": "input_json_delta", "partial_json": ""},
                    },
                )
            for delta in deltas:
                chunks.append(
                    pending
                    + event(
                        "content_block_delta",
                        {"type": "content_block_delta", "index": index, "delta": delta},
                    )
                )
                pending = b""
            for delta in trailing:
                pending += event(
                    "content_block_delta",
                    {"type": "content_block_delta", "index": index, "delta": delta},
                )
            pending += event("content_block_stop", {"type": "content_block_stop", "index": index})
        usage = {
            "input_tokens": reply.input_tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": reply.output_tokens,
        }
        tail = (
            pending
            + event(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {
                        "stop_reason": reply.stop_reason,
                        "stop_sequence": reply.stop_sequence,
                    },
                    "usage": usage,
                },
            )
            + event("message_stop", {"type": "message_stop"})
        )
        return StreamPlan(head, chunks, tail, _MIDSTREAM_ERROR)

    # -- misc endpoints -------------------------------------------------------------------
    async def count_tokens(
        self, request: web.Request, knobs: Knobs, body: Any
    ) -> web.StreamResponse:
        body, _model = self._validate(body)
        return self.json_response({"input_tokens": _input_tokens(body)})

    async def models(self, request: web.Request, knobs: Knobs, body: Any) -> web.StreamResponse:
        data = [
            {"type": "model", "id": mid, "display_name": name, "created_at": created}
            for mid, name, created in _MODELS
        ]
        return self.json_response(
            {"data": data, "has_more": False, "first_id": data[0]["id"], "last_id": data[-1]["id"]}
        )
