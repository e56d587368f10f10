"""OpenAI's Responses API for the OpenAI emulator: ``POST /responses`` (JSON or events),
``GET``/``DELETE /responses/{id}``, ``GET /responses/{id}/input_items``,
``POST /responses/{id}/cancel``, shaped like OpenAI's recorded answers
(``tests/fixtures/provider-recordings/TestOpenAIResponsesCommon``).

The answer follows the chat emulator's rules: when the last input item is a
``function_call_output`` the reply is ``The tool returned: <output>``; when the request
has function tools (and ``tool_choice`` is not ``none``) a ``function_call`` of the first
one (or the one ``tool_choice`` names) with arguments built from its schema; else the
``reply`` knob, cut to ``max_output_tokens`` (status ``incomplete``). Usage: ~4 characters
per token of the input text (earlier turns included) and of the output.

Responses are kept in memory (unless ``store`` is false), so ``previous_response_id`` must
name a kept one (else 400 like OpenAI) and the id calls find them (else 404).
"""

from __future__ import annotations

import time
from typing import Any

import orjson
from aiohttp import web

from relaygate.emulator.base import EarlyResponse, StreamPlan, count_tokens, sample_arguments
from relaygate.emulator.base import split_text as split
from relaygate.emulator.knobs import Knobs
from relaygate.emulator.openai_params import Host, bad_request, json_object, need_model

__all__ = ["add_responses_routes"]


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "".join(_text(p.get("text")) for p in value if isinstance(p, dict))
    return ""


def _items(raw: Any) -> list[dict[str, Any]]:
    if isinstance(raw, str):
        return [{"type": "message", "role": "user",
                 "content": [{"type": "input_text", "text": raw}]}]  # fmt: skip
    if isinstance(raw, list):
        return [dict(i, type=i.get("type", "message")) for i in raw if isinstance(i, dict)]
    return []


def _item_text(item: dict[str, Any]) -> str:
    kind = item.get("type")
    if kind == "message":
        return _text(item.get("content"))
    if kind == "function_call":
        return str(item.get("name", "")) + str(item.get("arguments", ""))
    if kind == "function_call_output":
        return _text(item.get("output"))
    return ""


class _Responses:
    def __init__(self, host: Host) -> None:
        self.host = host
        self.kept: dict[str, tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]] = {}

    def _id(self, prefix: str) -> str:
        return str(self.host.core.ids(prefix))

    def _missing(self, resp_id: str) -> EarlyResponse:
        return EarlyResponse(self.host.error(404, f"Response with id '{resp_id}' not found."))

    def _output(self, body: dict[str, Any], items: list[dict[str, Any]], knobs: Knobs) -> Any:
        last = items[-1] if items else {}
        tools = [t for t in body.get("tools") or () if isinstance(t, dict)]
        funcs = [t for t in tools if t.get("type") == "function"]
        choice = body.get("tool_choice")
        if last.get("type") == "function_call_output":
            text = "The tool returned: " + _text(last.get("output"))
        elif funcs and choice != "none":
            tool = funcs[0]
            if isinstance(choice, dict) and choice.get("name"):
                tool = next((f for f in funcs if f.get("name") == choice["name"]), tool)
            args = orjson.dumps(sample_arguments(tool.get("parameters"))).decode()
            item = {"id": self._id("fc_"), "type": "function_call", "status": "completed",
                    "arguments": args, "call_id": self._id("call_"),
                    "name": tool.get("name")}  # fmt: skip
            return item, count_tokens(args), False
        else:
            text = knobs.reply
        limit = body.get("max_output_tokens")
        cut = isinstance(limit, int) and 0 < limit < count_tokens(text)
        if cut and isinstance(limit, int):
            text = text[: limit * 4]
        item = {"id": self._id("msg_"), "type": "message", "status": "completed",
                "content": [{"type": "output_text", "annotations": [], "logprobs": [],
                             "text": text}], "role": "assistant"}  # fmt: skip
        return item, count_tokens(text), cut

    def _shell(self, body: dict[str, Any], model: str) -> dict[str, Any]:
        text = (
            body.get("text") if isinstance(body.get("text"), dict) else {"format": {"type": "text"}}
        )
        return {
            "id": self._id("resp_"), "object": "response", "created_at": int(time.time()),
            "status": "in_progress", "background": False, "completed_at": None, "error": None,
            "incomplete_details": None, "instructions": body.get("instructions"),
            "max_output_tokens": body.get("max_output_tokens"), "model": model,
            "output": [], "parallel_tool_calls": True,
            "previous_response_id": body.get("previous_response_id"),
            "reasoning": {"effort": None, "summary": None}, "service_tier": "default",
            "store": body.get("store") is not False, "temperature": 1.0, "text": text,
            "tool_choice": body.get("tool_choice", "auto"), "tools": body.get("tools") or [],
            "top_p": 1.0, "truncation": "disabled", "usage": None, "user": None,
            "metadata": body.get("metadata") or {},
        }  # fmt: skip

    async def create(self, request: web.Request, knobs: Knobs, body: Any) -> web.StreamResponse:
        host = self.host
        body = json_object(host, body)
        model = need_model(host, body.get("model"))
        items = _items(body.get("input"))
        if not items:
            raise bad_request(host, "Missing required parameter: 'input'.", "input")
        history: list[dict[str, Any]] = []
        prev = body.get("previous_response_id")
        if prev is not None:
            if prev not in self.kept:
                raise bad_request(
                    host, f"Previous response with id '{prev}' not found.", "previous_response_id"
                )
            old, old_input, old_history = self.kept[prev]
            history = [*old_history, *old_input, *old["output"]]
        trigger = await host.gate(knobs, model)
        item, out_tokens, cut = self._output(body, items, knobs)
        in_tokens = sum(count_tokens(_item_text(i)) for i in [*history, *items])
        in_tokens += count_tokens(_text(body.get("instructions")))
        resp = self._shell(body, model)
        head_resp = dict(resp)
        resp["output"] = [item]
        resp["status"] = "incomplete" if cut else "completed"
        resp["incomplete_details"] = {"reason": "max_output_tokens"} if cut else None
        resp["completed_at"] = int(time.time())
        resp["usage"] = {
            "input_tokens": in_tokens, "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": out_tokens, "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": in_tokens + out_tokens,
        }  # fmt: skip
        if body.get("store") is not False:
            ids = [dict(i, id=i.get("id") or self._id("msg_")) for i in items]
            self.kept[resp["id"]] = (resp, ids, history)
        if body.get("stream") is True:
            return await host.send_stream(
                request, knobs, self._plan(head_resp, resp, knobs), trigger
            )
        return await host.send_json(request, knobs, resp)

    def _plan(self, head: dict[str, Any], resp: dict[str, Any], knobs: Knobs) -> StreamPlan:
        seq = iter(range(1 << 30))

        def ev(obj: dict[str, Any]) -> bytes:
            obj["sequence_number"] = next(seq)
            return (
                b"event: " + str(obj["type"]).encode() + b"\ndata: " + orjson.dumps(obj) + b"\n\n"
            )

        item = resp["output"][0]
        at = {"item_id": item["id"], "output_index": 0}
        start = b"".join([
            ev({"type": "response.created", "response": head}),
            ev({"type": "response.in_progress", "response": head}),
        ])  # fmt: skip
        if item["type"] == "message":
            text = item["content"][0]["text"]
            part = {"type": "output_text", "annotations": [], "logprobs": [], "text": ""}
            start += ev({"type": "response.output_item.added", "output_index": 0,
                         "item": dict(item, status="in_progress", content=[])})  # fmt: skip
            start += ev({"type": "response.content_part.added", **at, "content_index": 0,
                         "part": part})  # fmt: skip
            chunks = [ev({"type": "response.output_text.delta", **at, "content_index": 0,
                          "delta": d, "logprobs": []})
                      for d in split(text, knobs.chunks)]  # fmt: skip
            tail = ev({"type": "response.output_text.done", **at, "content_index": 0,
                       "text": text, "logprobs": []})  # fmt: skip
            tail += ev({"type": "response.content_part.done", **at, "content_index": 0,
                        "part": item["content"][0]})  # fmt: skip
        else:
            args = item["arguments"]
            start += ev({"type": "response.output_item.added", "output_index": 0,
                         "item": dict(item, status="in_progress", arguments="")})  # fmt: skip
            chunks = [ev({"type": "response.function_call_arguments.delta", **at, "delta": d})
                      for d in split(args, knobs.chunks)]  # fmt: skip
            tail = ev({"type": "response.function_call_arguments.done", **at, "arguments": args})
        tail += ev({"type": "response.output_item.done", "output_index": 0, "item": item})
        done = "response.completed" if resp["status"] == "completed" else "response.incomplete"
        tail += ev({"type": done, "response": resp})
        return StreamPlan(start, chunks, tail, self.host.midstream_error_frame())

    async def get(self, request: web.Request, knobs: Knobs, body: Any) -> web.StreamResponse:
        resp_id = request.match_info["resp_id"]
        if resp_id not in self.kept:
            raise self._missing(resp_id)
        return await self.host.send_json(request, knobs, self.kept[resp_id][0])

    async def delete(self, request: web.Request, knobs: Knobs, body: Any) -> web.StreamResponse:
        resp_id = request.match_info["resp_id"]
        if self.kept.pop(resp_id, None) is None:
            raise self._missing(resp_id)
        out = {"id": resp_id, "object": "response", "deleted": True}
        return await self.host.send_json(request, knobs, out)

    async def input_items(
        self, request: web.Request, knobs: Knobs, body: Any
    ) -> web.StreamResponse:
        resp_id = request.match_info["resp_id"]
        if resp_id not in self.kept:
            raise self._missing(resp_id)
        items = list(self.kept[resp_id][1])
        if request.query.get("order", "desc") == "desc":
            items.reverse()
        out = {
            "object": "list", "data": items, "has_more": False,
            "first_id": items[0]["id"] if items else None,
            "last_id": items[-1]["id"] if items else None,
        }  # fmt: skip
        return await self.host.send_json(request, knobs, out)

    async def cancel(self, request: web.Request, knobs: Knobs, body: Any) -> web.StreamResponse:
        resp_id = request.match_info["resp_id"]
        if resp_id not in self.kept:
            raise self._missing(resp_id)
        raise bad_request(
            self.host, "Only responses created with background=true can be cancelled."
        )


def add_responses_routes(host: Host, app: web.Application, prefixes: Any, name: str) -> None:
    """Serve the Responses API under each prefix (the OpenAI emulator only)."""
    if name != "openai":
        return
    api = _Responses(host)
    for prefix in prefixes:
        base = f"{prefix}/responses"
        app.router.add_post(base, host.api(api.create))
        app.router.add_get(base + "/{resp_id}", host.api(api.get))
        app.router.add_delete(base + "/{resp_id}", host.api(api.delete))
        app.router.add_get(base + "/{resp_id}/input_items", host.api(api.input_items))
        app.router.add_post(base + "/{resp_id}/cancel", host.api(api.cancel))
