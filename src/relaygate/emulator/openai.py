"""OpenAI chat completions, embeddings and models emulator; base class of the OpenAI family."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, ClassVar

import orjson
from aiohttp import web

from relaygate.emulator.base import (
    EarlyResponse,
    Provider,
    StreamPlan,
    count_tokens,
    embedding_base64,
    embedding_vector,
    sample_arguments,
    split_text,
)
from relaygate.emulator.grounded import grounded_reply
from relaygate.emulator.knobs import Knobs
from relaygate.emulator.openai_endpoints import add_model_routes
from relaygate.emulator.openai_objects import add_object_routes
from relaygate.emulator.openai_realtime import add_realtime_routes
from relaygate.emulator.openai_responses import add_responses_routes

__all__ = ["OpenAIEmulator"]

_DONE = b"data: [DONE]\n\n"


def _text_of(content: Any) -> str:
    """Text of an OpenAI message content (string or parts array)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)
        )
    return ""


def _prompt_tokens(body: dict[str, Any]) -> int:
    total = 0
    for msg in body.get("messages") or ():
        if not isinstance(msg, dict):
            continue
        total += 4
        content = msg.get("content")
        total += count_tokens(_text_of(content))
        if isinstance(content, list):
            total += 85 * sum(
                1 for p in content if isinstance(p, dict) and p.get("type") == "image_url"
            )
    tools = body.get("tools")
    if isinstance(tools, list):
        total += 10 * len(tools)
    return max(total, 1)


def completion_object(
    cid: str, created: int, model: str, choice: dict[str, Any], usage: dict[str, Any] | None
) -> dict[str, Any]:
    """A whole ``chat.completion`` with its one ``choice``."""
    return {
        "id": cid,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [choice],
        "usage": usage,
    }


@dataclass(slots=True)
class _Answer:
    text: str
    reasoning: str
    tool_id: str
    tool_name: str
    tool_args: str
    finish: str
    prompt_tokens: int
    completion_tokens: int
    reasoning_tokens: int


class OpenAIEmulator(Provider):
    name: ClassVar[str] = "openai"
    base_path: ClassVar[str] = "/v1"
    prefixes: ClassVar[tuple[str, ...]] = ("/v1",)
    has_embeddings: ClassVar[bool] = True
    owned_by: ClassVar[str] = "openai"
    model_ids: ClassVar[tuple[str, ...]] = (
        "gpt-4o-mini",
        "gpt-4o",
        "o4-mini",
        "text-embedding-3-small",
    )

    # -- routes ---------------------------------------------------------------------------
    def add_routes(self, app: web.Application) -> None:
        for prefix in self.prefixes:
            app.router.add_post(f"{prefix}/chat/completions", self.api(self.chat))
            if self.has_embeddings:
                app.router.add_post(f"{prefix}/embeddings", self.api(self.embeddings))
            app.router.add_get(f"{prefix}/models", self.api(self.models))
            add_model_routes(self, app, prefix)
        add_object_routes(self, app, self.prefixes)  # files, jobs, assistants... (openai only)
        add_realtime_routes(self, app, self.prefixes)  # /realtime over WebSocket
        add_responses_routes(self, app, self.prefixes, self.name)  # /responses (openai only)

    # -- errors ---------------------------------------------------------------------------
    _ERRORS: ClassVar[dict[int, tuple[str, str, str | None]]] = {
        400: ("invalid_request_error", "Invalid request (emulated error).", None),
        401: (
            "invalid_request_error",
            "Incorrect API key provided. You can find your API key at "
            "https://platform.openai.com/account/api-keys.",
            "invalid_api_key",
        ),
        403: (
            "invalid_request_error",
            "Country, region, or territory not supported",
            "unsupported_country_region_territory",
        ),
        404: (
            "invalid_request_error",
            "The model does not exist or you do not have access to it.",
            "model_not_found",
        ),
        429: (
            "requests",
            "Rate limit reached for requests (emulated). Please try again in 1s.",
            "rate_limit_exceeded",
        ),
        500: (
            "server_error",
            "The server had an error while processing your request. Sorry about that!",
            None,
        ),
        503: ("server_error", "The engine is currently overloaded, please try again later.", None),
    }

    def error(
        self, status: int, message: str | None = None, *, param: str | None = None
    ) -> web.Response:
        default = ("server_error", "Emulated upstream error.", None)
        if status < 500:
            default = ("invalid_request_error", "Emulated request error.", None)
        kind, msg, code = self._ERRORS.get(status, default)
        payload = {"error": {"message": message or msg, "type": kind, "param": param, "code": code}}
        return self.json_response(payload, status)

    def midstream_error_frame(self) -> bytes:
        err = {
            "error": {
                "message": "The server had an error while processing your request. "
                "Sorry about that!",
                "type": "server_error",
                "param": None,
                "code": None,
            }
        }
        return b"data: " + orjson.dumps(err) + b"\n\n"

    def invalid_json(self) -> web.Response:
        return self.error(
            400,
            "We could not parse the JSON body of your request. (HINT: This likely means you "
            "aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, "
            "but what was sent was not valid JSON.)",
        )

    async def not_found(self, request: web.Request, knobs: Knobs, body: Any) -> web.Response:
        return self.error(404, f"Invalid URL ({request.method} {request.path})")

    def auth_error(self, missing: bool) -> web.Response:
        if missing:
            return self.error(
                401,
                "You didn't provide an API key. You need to provide your API key in an "
                "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
            )
        return self.error(401)

    def _key_from(self, request: web.Request) -> str:
        auth = request.headers.get("Authorization", "")
        scheme, _, token = auth.partition(" ")
        return token.strip() if scheme.lower() == "bearer" else ""

    def check_request(self, request: web.Request, knobs: Knobs) -> None:
        if not knobs.require_auth:
            return
        key = self._key_from(request)
        if not key:
            raise EarlyResponse(self.auth_error(True))
        if knobs.api_key is not None and key != knobs.api_key:
            raise EarlyResponse(self.auth_error(False))

    # -- chat -----------------------------------------------------------------------------
    def request_model(self, request: web.Request, body: dict[str, Any]) -> str:
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise EarlyResponse(
                self.error(400, "you must provide a model parameter", param="model")
            )
        return model

    #: the 400 message for a missing or empty ``messages``
    missing_messages: ClassVar[str] = "Missing required parameter: 'messages'."

    def chat_request(self, request: web.Request, body: Any) -> tuple[dict[str, Any], str]:
        """The chat body checked (a JSON object with a model and messages) and its model."""
        if not isinstance(body, dict):
            raise EarlyResponse(self.error(400, "The request body must be a JSON object."))
        model = self.request_model(request, body)
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise EarlyResponse(self.error(400, self.missing_messages, param="messages"))
        return body, model

    @staticmethod
    def include_usage(body: dict[str, Any]) -> bool:
        """Whether the request asks for the usage chunk (``stream_options.include_usage``)."""
        opts = body.get("stream_options")
        return isinstance(opts, dict) and opts.get("include_usage") is True

    def _compose(self, body: dict[str, Any], knobs: Knobs, model: str) -> _Answer:
        messages = body["messages"]
        last = messages[-1] if isinstance(messages[-1], dict) else {}
        tools = body.get("tools")
        tool_choice = body.get("tool_choice")
        text = ""
        tool_id = tool_name = tool_args = ""
        finish = "stop"
        if last.get("role") == "tool":
            text = f"The tool returned: {_text_of(last.get('content'))}"
        elif isinstance(tools, list) and tools and tool_choice != "none":
            tool = self._pick_tool(tools, tool_choice)
            tool_name = str(tool.get("name") or "tool")
            tool_args = orjson.dumps(sample_arguments(tool.get("parameters"))).decode()
            tool_id = self.core.ids("call_")
            finish = "tool_calls"
        else:
            text = grounded_reply(messages) or knobs.reply  # search results: cite them
        reasoning = knobs.reasoning if self._reasons(model) else ""
        limit = body.get("max_completion_tokens") or body.get("max_tokens")
        if text and isinstance(limit, int) and limit > 0 and count_tokens(text) > limit:
            text = text[: limit * 4]
            finish = "length"
        reasoning_tokens = count_tokens(reasoning)
        completion = count_tokens(text) + count_tokens(tool_args) + reasoning_tokens
        return _Answer(
            text=text,
            reasoning=reasoning,
            tool_id=tool_id,
            tool_name=tool_name,
            tool_args=tool_args,
            finish=finish,
            prompt_tokens=_prompt_tokens(body),
            completion_tokens=max(completion, 1),
            reasoning_tokens=reasoning_tokens,
        )

    @staticmethod
    def _pick_tool(tools: list[Any], choice: Any) -> dict[str, Any]:
        funcs = [
            t["function"]
            for t in tools
            if isinstance(t, dict) and isinstance(t.get("function"), dict)
        ]
        if not funcs:
            return {}
        if isinstance(choice, dict) and isinstance(choice.get("function"), dict):
            wanted = choice["function"].get("name")
            for f in funcs:
                if f.get("name") == wanted:
                    return f  # type: ignore[no-any-return]
        return funcs[0]  # type: ignore[no-any-return]

    def _reasons(self, model: str) -> bool:
        return False

    def usage(self, ans: _Answer) -> dict[str, Any]:
        return {
            "prompt_tokens": ans.prompt_tokens,
            "completion_tokens": ans.completion_tokens,
            "total_tokens": ans.prompt_tokens + ans.completion_tokens,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": ans.reasoning_tokens,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }

    def decorate_message(self, msg: dict[str, Any]) -> None:
        msg["refusal"] = None
        msg["annotations"] = []

    def decorate_completion(self, obj: dict[str, Any], choice: dict[str, Any]) -> None:
        obj["service_tier"] = "default"
        obj["system_fingerprint"] = "fp_emulator"

    def chunk_base(self, cid: str, created: int, model: str) -> dict[str, Any]:
        return {
            "id": cid,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "service_tier": "default",
            "system_fingerprint": "fp_emulator",
        }

    #: extra keys for every streamed choice (Azure content filter results)
    choice_extra: ClassVar[dict[str, Any]] = {}
    #: OpenAI's ``obfuscation`` padding field on stream chunks
    obfuscation: ClassVar[bool] = True

    @staticmethod
    def tool_header(ans: _Answer) -> dict[str, Any]:
        return {
            "tool_calls": [
                {
                    "index": 0,
                    "id": ans.tool_id,
                    "type": "function",
                    "function": {"name": ans.tool_name, "arguments": ""},
                }
            ]
        }

    def first_delta(self, ans: _Answer) -> dict[str, Any]:
        if ans.tool_name:
            return {
                "role": "assistant",
                "content": None,
                **self.tool_header(ans),
                "refusal": None,
            }
        return {"role": "assistant", "content": "", "refusal": None}

    def stream_head(self) -> bytes:
        return b""

    async def chat(self, request: web.Request, knobs: Knobs, body: Any) -> web.StreamResponse:
        body, model = self.chat_request(request, body)
        trigger = await self.gate(knobs, model)
        ans = self._compose(body, knobs, model)
        cid = self.core.ids("chatcmpl-")
        created = int(time.time())
        if body.get("stream") is True:
            plan = self._plan(ans, knobs, cid, created, model, self.include_usage(body))
            return await self.send_stream(request, knobs, plan, trigger)

        msg: dict[str, Any] = {"role": "assistant", "content": ans.text or None}
        if ans.reasoning:
            msg["reasoning_content"] = ans.reasoning
        if ans.tool_name:
            msg["tool_calls"] = [
                {
                    "id": ans.tool_id,
                    "type": "function",
                    "function": {"name": ans.tool_name, "arguments": ans.tool_args},
                }
            ]
        self.decorate_message(msg)
        choice: dict[str, Any] = {
            "index": 0,
            "message": msg,
            "logprobs": None,
            "finish_reason": ans.finish,
        }
        obj = completion_object(cid, created, model, choice, self.usage(ans))
        self.decorate_completion(obj, choice)
        return await self.send_json(request, knobs, obj)

    def _plan(
        self, ans: _Answer, knobs: Knobs, cid: str, created: int, model: str, include: bool
    ) -> StreamPlan:
        base = self.chunk_base(cid, created, model)
        mode = knobs.usage
        null_usage = mode == "include_usage" and include
        extra = self.choice_extra
        obf = self.obfuscation
        counter = 0

        def frame(delta: dict[str, Any], finish: str | None = None, **more: Any) -> bytes:
            nonlocal counter
            choice: dict[str, Any] = {
                "index": 0,
                "delta": delta,
                "logprobs": None,
                "finish_reason": finish,
            }
            if extra:
                choice.update(extra)
            if "choice_usage" in more:
                choice["usage"] = more.pop("choice_usage")
            obj = {**base, "choices": [choice]}
            if null_usage:
                obj["usage"] = None
            obj.update(more)
            if obf:
                counter += 1
                obj["obfuscation"] = "emu"[: counter % 4]
            return b"data: " + orjson.dumps(obj) + b"\n\n"

        head = self.stream_head() + frame(self.first_delta(ans))
        chunks: list[bytes] = []
        n = knobs.chunks
        for piece in split_text(ans.reasoning, n):
            chunks.append(frame({"content": None, "reasoning_content": piece}))
        content_key: dict[str, Any] = {"reasoning_content": None} if ans.reasoning else {}
        for piece in split_text(ans.text, n):
            chunks.append(frame({"content": piece, **content_key}))
        # With reasoning the tool call header follows the reasoning chunks (not in the head).
        pending = frame(self.tool_header(ans)) if ans.tool_name and ans.reasoning else b""
        for piece in split_text(ans.tool_args, n):
            args = {"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}
            chunks.append(pending + frame(args))
            pending = b""

        usage = self.usage(ans)
        if mode == "on_finish_chunk":
            tail = pending + frame({}, ans.finish, usage=usage)
        elif mode == "in_choice":
            tail = pending + frame({}, ans.finish, choice_usage=usage)
        else:
            tail = pending + frame({}, ans.finish)
        if null_usage:
            final = {**base, "choices": [], "usage": usage}
            if obf:
                final["obfuscation"] = "emu"
            tail += b"data: " + orjson.dumps(final) + b"\n\n"
        return StreamPlan(head, chunks, tail + _DONE, self.midstream_error_frame())

    # -- embeddings -----------------------------------------------------------------------
    async def embeddings(self, request: web.Request, knobs: Knobs, body: Any) -> web.StreamResponse:
        if not isinstance(body, dict):
            raise EarlyResponse(self.error(400, "The request body must be a JSON object."))
        model = self.request_model(request, body)
        raw = body.get("input")
        items: list[str | list[int]]
        if isinstance(raw, str) or (
            isinstance(raw, list) and raw and all(isinstance(x, int) for x in raw)
        ):
            items = [raw]
        elif (
            isinstance(raw, list)
            and raw
            and all(
                isinstance(x, str) or (isinstance(x, list) and all(isinstance(t, int) for t in x))
                for x in raw
            )
        ):
            items = raw
        else:
            raise EarlyResponse(
                self.error(
                    400, "'input' is a required property and must be non-empty", param="input"
                )
            )
        dim = body.get("dimensions") or knobs.embedding_dim
        if not isinstance(dim, int) or dim < 1:
            raise EarlyResponse(self.error(400, "Invalid 'dimensions'", param="dimensions"))
        await self.gate(knobs, model)
        as_b64 = knobs.embeddings_base64 and body.get("encoding_format") == "base64"
        data = [
            {
                "object": "embedding",
                "index": i,
                "embedding": embedding_base64(item, dim) if as_b64 else embedding_vector(item, dim),
            }
            for i, item in enumerate(items)
        ]
        tokens = sum(count_tokens(x) if isinstance(x, str) else len(x) for x in items)
        payload = {
            "object": "list",
            "data": data,
            "model": model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
        return await self.send_json(request, knobs, payload)

    # -- models ---------------------------------------------------------------------------
    async def models(self, request: web.Request, knobs: Knobs, body: Any) -> web.StreamResponse:
        data = [
            {"id": m, "object": "model", "created": 1715367049, "owned_by": self.owned_by}
            for m in self.model_ids
        ]
        return self.json_response({"object": "list", "data": data})
