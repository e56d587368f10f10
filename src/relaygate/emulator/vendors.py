"""One configurable emulator for the OpenAI-compatible vendors, a wire style per vendor.

Each vendor is a :class:`Style` (path prefix, where usage goes, the reasoning field, whole or
fragmented tool calls, SSE framing, error bodies, HTTP-200 errors, embeddings, the request
rules the vendor enforces) and a registered subclass of :class:`VendorEmulator` named after
the vendor (``qwen``, ``glm``, …; ``emulator/server.py`` ``PROVIDERS``). Shapes follow the
recordings in ``tests/fixtures/provider-recordings`` where they exist (GLM, xAI, Groq,
llama.cpp, OpenRouter) and ``docs/providers.md`` otherwise.

Per-instance switches, set on ``EmulatorServer.impl`` after construction:
``jwt_secret`` (GLM: verify the Bearer JWT signed with it), ``appid`` (Qianfan: require
this ``appid`` header), ``sse_eol`` (``b"\\r\\n\\r\\n"`` framing). Model triggers on top of
the ``error-NNN`` ones: ``error-200-<code>`` answers HTTP 200 with the vendor's in-body
error (MiniMax ``base_resp.status_code``, Spark ``code``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

import orjson
from aiohttp import web

from relaygate.emulator.base import EarlyResponse, Provider, StreamPlan, split_text
from relaygate.emulator.knobs import Knobs
from relaygate.emulator.openai import OpenAIEmulator, _Answer

__all__ = ["STYLES", "VENDOR_EMULATORS", "Style", "VendorEmulator"]

_IN_BODY = re.compile(r"^error-200-(\d+)$")


@dataclass(frozen=True, slots=True)
class Style:
    name: str
    prefix: str
    models: tuple[str, ...]
    #: include_usage | finish_chunk (GLM) | in_choice (Moonshot) | final_frame (MiniMax)
    #: | last_content (Spark) | groq | openrouter
    usage: str = "include_usage"
    #: reasoning_content | reasoning | openrouter | minimax | hidden (counted, no text)
    reasoning: str = "reasoning_content"
    reasons: tuple[str, ...] = ()  # model-name parts of reasoning models
    tools: str = "fragmented"  # fragmented | whole | object (Spark: one object, no id)
    data_prefix: bytes = b"data: "
    event_head: bytes = b""  # a comment line inside each event (DashScope)
    errors: str = "openai"  # openai | glm | minimax | spark
    embeddings: bool = False
    usage_outside: bool = False  # xAI: reasoning tokens outside completion_tokens
    max_temperature: float | None = None
    fixed_temperature: tuple[tuple[str, float], ...] = ()
    rejects_required: bool = False  # 400 for tool_choice "required"
    one_choice: bool = False  # 400 for n > 1
    choice_extra: dict[str, Any] = field(default_factory=dict)


STYLES: dict[str, Style] = {
    s.name: s
    for s in (
        Style(
            "qwen",
            "/compatible-mode/v1",
            ("qwen-plus", "qwen3-32b", "text-embedding-v3"),
            reasons=("qwen3", "qwq"),
            event_head=b":HTTP_STATUS/200\n",
            embeddings=True,
        ),
        Style(
            "glm",
            "/api/paas/v4",
            ("glm-4-flash", "glm-4.7-flash", "embedding-3"),
            usage="finish_chunk",
            reasons=("glm-4.5", "glm-4.6", "glm-4.7", "glm-z1"),
            tools="whole",
            errors="glm",
            embeddings=True,
            max_temperature=1.0,
            rejects_required=True,
        ),
        Style(
            "qianfan",
            "/v2",
            ("ernie-4.0-8k", "deepseek-r1", "embedding-v1"),
            reasons=("deepseek-r1", "x1"),
            embeddings=True,
            choice_extra={"flag": 0, "is_end": False, "need_clear_history": False},
        ),
        Style(
            "spark",
            "/v1",
            ("lite", "generalv3.5", "4.0Ultra"),
            usage="last_content",
            tools="object",
            data_prefix=b"data:",
            errors="spark",
            one_choice=True,
        ),
        Style(
            "moonshot",
            "/v1",
            ("moonshot-v1-8k", "kimi-k2-0905-preview", "kimi-k2-thinking"),
            usage="in_choice",
            reasons=("thinking", "kimi-k2.5", "kimi-k2.6"),
            max_temperature=1.0,
            fixed_temperature=(("kimi-k2.5", 1.0), ("kimi-k2.6", 1.0), ("kimi-k2-thinking", 1.0)),
            rejects_required=True,
        ),
        Style(
            "hunyuan",
            "/v1",
            ("hunyuan-turbos-latest", "hunyuan-t1-latest", "hunyuan-embedding"),
            reasons=("hunyuan-t1",),
            embeddings=True,
        ),
        Style(
            "doubao",
            "/api/v3",
            ("doubao-1-5-pro-32k-250115", "doubao-seed-1-6-250615", "doubao-embedding-text-240715"),
            reasons=("seed", "thinking"),
            embeddings=True,
        ),
        Style(
            "minimax",
            "/v1",
            ("MiniMax-M2", "MiniMax-Text-01"),
            usage="final_frame",
            reasoning="minimax",
            reasons=("MiniMax-M",),
            errors="minimax",
            max_temperature=1.0,
            one_choice=True,
        ),
        Style(
            "xai",
            "/v1",
            ("grok-4-fast", "grok-3"),
            reasoning="hidden",
            reasons=("grok-4",),
            tools="whole",
            usage_outside=True,
        ),
        Style(
            "groq",
            "/openai/v1",
            ("moonshotai/kimi-k2-instruct-0905", "openai/gpt-oss-20b"),
            usage="groq",
            reasoning="reasoning",
            reasons=("gpt-oss", "qwen3"),
            tools="whole",
            one_choice=True,
        ),
        Style(
            "openrouter",
            "/api/v1",
            ("z-ai/glm-5-turbo", "openai/gpt-4o-mini"),
            usage="openrouter",
            reasoning="openrouter",
            reasons=("glm", "grok", "r1", "thinking"),
            embeddings=True,
        ),
        Style(
            "ollama",
            "/v1",
            ("llama3.2", "qwen3:8b", "nomic-embed-text"),
            reasoning="reasoning",
            reasons=("qwen3", "deepseek-r1", "gpt-oss"),
            tools="whole",
            embeddings=True,
        ),
        Style(
            "llamacpp",
            "/v1",
            ("openai/gpt-oss-20b",),
            reasons=("gpt-oss",),
            embeddings=True,
        ),
    )
}

_GLM_CODES = {400: "1214", 401: "1000", 403: "1000", 404: "1211", 429: "1302", 500: "500"}
_MINIMAX_200 = {
    1004: "login fail",
    1002: "rate limit",
    1008: "insufficient balance",
    1026: "input new_sensitive",
    1027: "output new_sensitive",
}


def _b64url_decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def verify_zhipu_jwt(token: str, key_id: str, secret: str, now: float) -> bool:
    """Zhipu's JWT (``providers/zhipu_jwt.py``): HS256 with ``secret``, ``exp`` in ms."""
    parts = token.split(".")
    if len(parts) != 3:
        return False
    signing = f"{parts[0]}.{parts[1]}".encode()
    want = hmac.new(secret.encode(), signing, hashlib.sha256).digest()
    try:
        if not hmac.compare_digest(want, _b64url_decode(parts[2])):
            return False
        header = orjson.loads(_b64url_decode(parts[0]))
        payload = orjson.loads(_b64url_decode(parts[1]))
    except (ValueError, orjson.JSONDecodeError):
        return False
    return (
        header.get("alg") == "HS256"
        and header.get("sign_type") == "SIGN"
        and payload.get("api_key") == key_id
        and isinstance(payload.get("exp"), int)
        and payload["exp"] > now * 1000
    )


class VendorEmulator(OpenAIEmulator):
    """The OpenAI chat dialect as ``style`` speaks it."""

    style: ClassVar[Style]
    obfuscation: ClassVar[bool] = False

    def __init__(self, core: Any) -> None:
        super().__init__(core)
        self.jwt_secret: str | None = None  # GLM: "id.secret" → verify JWTs signed by it
        self.appid: str | None = None  # Qianfan: the appid header to require
        self.sse_eol = b"\n\n"
        self.last_usage: dict[str, Any] | None = None  # the usage of the last answer

    # -- auth and errors ------------------------------------------------------------------
    def check_request(self, request: web.Request, knobs: Knobs) -> None:
        super().check_request(request, knobs)
        if not knobs.require_auth:
            return
        if self.jwt_secret is not None:
            key_id, _, secret = self.jwt_secret.partition(".")
            if not verify_zhipu_jwt(self._key_from(request), key_id, secret, time.time()):
                raise EarlyResponse(self.error(401, "令牌已过期或验证不正确"))
        if self.appid is not None and request.headers.get("appid") != self.appid:
            raise EarlyResponse(self.error(403, "appid is invalid or missing"))

    def error(
        self, status: int, message: str | None = None, *, param: str | None = None
    ) -> web.Response:
        kind = self.style.errors
        if kind == "glm":
            code = _GLM_CODES.get(status, str(status))
            body = {"error": {"code": code, "message": message or f"emulated GLM error {code}"}}
            return self.json_response(body, status)
        resp = super().error(status, message, param=param)
        if self.style.name in ("qwen", "qianfan"):
            obj = orjson.loads(resp.body)  # type: ignore[arg-type]
            obj["request_id" if self.style.name == "qwen" else "id"] = self.core.ids("req-")
            return self.json_response(obj, status)
        return resp

    def in_body_error(self, code: int) -> dict[str, Any]:
        if self.style.errors == "minimax":
            msg = _MINIMAX_200.get(code, "unknown error")
            return {
                "id": "",
                "choices": None,
                "base_resp": {"status_code": code, "status_msg": msg},
            }
        return {
            "code": code,
            "message": f"emulated Spark error {code}",
            "sid": self.core.ids("cha"),
        }

    def midstream_error_frame(self) -> bytes:
        if self.style.errors in ("minimax", "spark"):
            return self._frame(
                self.in_body_error(1000 if self.style.errors == "minimax" else 10012)
            )
        if self.style.errors == "glm":
            return self._frame({"error": {"code": "500", "message": "Internal Error"}})
        return super().midstream_error_frame()

    def _rule(self, body: dict[str, Any], model: str) -> str | None:
        """The vendor's own refusal of a parameter (what the adaptor must avoid), or None."""
        st = self.style
        temp = body.get("temperature")
        if isinstance(temp, int | float):
            for prefix, value in st.fixed_temperature:
                if model.startswith(prefix) and temp != value:
                    return f"invalid temperature: only {value:g} is allowed for this model"
            if st.max_temperature is not None and not 0 <= temp <= st.max_temperature:
                return f"invalid temperature: must be in [0, {st.max_temperature:g}]"
        if st.rejects_required and body.get("tool_choice") == "required":
            return "tool_choice 'required' is not supported"
        n = body.get("n")
        if st.one_choice and n is not None and n != 1:
            return "'n' : number must be at most 1"
        return None

    # -- chat -----------------------------------------------------------------------------
    def _reasons(self, model: str) -> bool:
        return any(part in model for part in self.style.reasons)

    def usage(self, ans: _Answer) -> dict[str, Any]:
        st = self.style
        out = super().usage(ans)
        if st.usage_outside and ans.reasoning_tokens:
            out["completion_tokens"] = ans.completion_tokens - ans.reasoning_tokens
        if st.name == "groq":
            out = {k: out[k] for k in ("prompt_tokens", "completion_tokens", "total_tokens")}
            out.update(queue_time=0.01, prompt_time=0.001, completion_time=0.002, total_time=0.003)
        return out

    def _frame(self, obj: Any) -> bytes:
        return self.style.event_head + self.style.data_prefix + orjson.dumps(obj) + self.sse_eol

    async def chat(self, request: web.Request, knobs: Knobs, body: Any) -> web.StreamResponse:
        if not isinstance(body, dict):
            raise EarlyResponse(self.error(400, "The request body must be a JSON object."))
        model = self.request_model(request, body)
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise EarlyResponse(self.error(400, "messages must not be empty", param="messages"))
        stream = body.get("stream") is True
        m = _IN_BODY.match(model)
        if m and self.style.errors in ("minimax", "spark"):
            err = self.in_body_error(int(m.group(1)))
            if stream and self.style.errors == "spark":
                plan = StreamPlan(b"", [], self._frame(err), b"")
                return await self.send_stream(request, knobs, plan, None)
            return await self.send_json(request, knobs, err)
        refusal = self._rule(body, model)
        if refusal is not None:
            raise EarlyResponse(self.error(400, refusal))
        trigger = await self.gate(knobs, model)
        ans = self._compose(body, knobs, model)
        self.last_usage = self.usage(ans)
        cid = self.core.ids("chatcmpl-")
        created = int(time.time())
        if stream:
            opts = body.get("stream_options")
            include = isinstance(opts, dict) and opts.get("include_usage") is True
            plan = self._stream_plan(body, ans, knobs, cid, created, model, include)
            return await self.send_stream(request, knobs, plan, trigger)
        return await self.send_json(
            request, knobs, self._completion(body, ans, cid, created, model)
        )

    def _reasoning_fields(self, body: dict[str, Any], text: str) -> dict[str, Any]:
        kind = self.style.reasoning
        if not text or kind == "hidden":
            return {}
        if kind == "reasoning":
            return {"reasoning": text}
        if kind == "openrouter":
            detail = {"type": "reasoning.text", "text": text, "format": "unknown", "index": 0}
            return {"reasoning": text, "reasoning_details": [detail]}
        if kind == "minimax":
            if body.get("reasoning_split") is not True:
                return {}  # inline <think> tags instead (see _content)
            detail = {
                "type": "reasoning.text",
                "id": "reasoning-text-1",
                "format": "MiniMax-response-v1",
                "index": 0,
                "text": text,
            }
            return {"reasoning_details": [detail]}
        return {"reasoning_content": text}

    def _inline_think(self, body: dict[str, Any], ans: _Answer) -> str:
        if (
            self.style.reasoning == "minimax"
            and ans.reasoning
            and body.get("reasoning_split") is not True
        ):
            return f"<think>\n{ans.reasoning}\n</think>\n\n"
        return ""

    def _tool_calls(self, ans: _Answer, *, stream: bool) -> Any:
        call: dict[str, Any] = {
            "id": ans.tool_id,
            "type": "function",
            "function": {"name": ans.tool_name, "arguments": ans.tool_args},
        }
        if self.style.tools == "object":
            del call["id"]
            return call
        if stream:
            call["index"] = 0
        return [call]

    def _completion(
        self, body: dict[str, Any], ans: _Answer, cid: str, created: int, model: str
    ) -> dict[str, Any]:
        st = self.style
        content = self._inline_think(body, ans) + ans.text
        msg: dict[str, Any] = {"role": "assistant", "content": content or None}
        msg.update(self._reasoning_fields(body, ans.reasoning))
        if ans.tool_name:
            msg["tool_calls"] = self._tool_calls(ans, stream=False)
        choice: dict[str, Any] = {"index": 0, "message": msg, "finish_reason": ans.finish}
        obj: dict[str, Any] = {
            "id": cid,
            "object": "chat.completion",
            "created": created,
            "model": model,
            "choices": [choice],
            "usage": self.last_usage,
        }
        if st.errors == "spark":
            del choice["finish_reason"]
            return {
                "code": 0,
                "message": "Success",
                "sid": self.core.ids("cha"),
                "choices": [choice],
                "usage": self.last_usage,
            }
        if st.name == "groq":
            obj.update(
                usage_breakdown=None, x_groq={"id": self.core.ids("req_")}, service_tier="on_demand"
            )
        elif st.errors == "minimax":
            obj.update(
                input_sensitive=False,
                output_sensitive=False,
                base_resp={"status_code": 0, "status_msg": ""},
            )
        elif st.name == "glm":
            obj["request_id"] = cid
        return obj

    def _stream_plan(
        self,
        body: dict[str, Any],
        ans: _Answer,
        knobs: Knobs,
        cid: str,
        created: int,
        model: str,
        include: bool,
    ) -> StreamPlan:
        st = self.style
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

        usage = self.last_usage or {}
        head = self._frame(chunk({"role": "assistant", "content": ""}))
        parts: list[dict[str, Any]] = []
        role = {"role": ""} if minimax else {}
        for piece in split_text(ans.reasoning, knobs.chunks):
            fields = self._reasoning_fields(body, piece)
            if fields:
                parts.append(chunk({**role, **fields}))
        think = self._inline_think(body, ans)
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
                    chunk({"role": "assistant", "tool_calls": self._tool_calls(ans, stream=True)})
                )
        if not parts:
            parts.append(chunk({"content": ""}))
        if st.usage == "last_content":
            parts[-1] = {**parts[-1], "usage": usage}
        if st.usage == "groq" and "x_groq" not in parts[0]:
            parts[0] = {**parts[0], "x_groq": {"id": self.core.ids("req_")}}
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
            final = self._completion(body, ans, cid, created, model)
            final["choices"][0]["message"]["name"] = "MiniMax AI"
            tail.append(final)
        elif not spark:
            tail.append(chunk({}, ans.finish))
            if include:
                tail.append({**base, "choices": [], "usage": usage})
        return StreamPlan(
            head,
            [self._frame(p) for p in parts],
            b"".join(self._frame(t) for t in tail) + b"data: [DONE]" + self.sse_eol,
            self.midstream_error_frame(),
        )


def _emulator(style: Style) -> type[VendorEmulator]:
    owned = style.name
    attrs = {
        "name": style.name,
        "style": style,
        "base_path": style.prefix,
        "prefixes": (style.prefix,),
        "has_embeddings": style.embeddings,
        "owned_by": owned,
        "model_ids": style.models,
        "__doc__": f"The {style.name} wire style of the OpenAI-compatible API.",
    }
    return type(f"{style.name.capitalize()}Emulator", (VendorEmulator,), attrs)


#: one registered emulator class per vendor style (``emulator/server.py`` ``PROVIDERS``)
VENDOR_EMULATORS: tuple[type[Provider], ...] = tuple(_emulator(s) for s in STYLES.values())
