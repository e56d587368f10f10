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

Where things are: the styles in ``emulator/vendors_styles.py``, the JWT and parameter checks
in ``emulator/vendors_request.py``, answers and the stream plan in
``emulator/vendors_answer.py``, the vendors' error bodies in ``emulator/vendors_errors.py``;
this module holds the emulator class (auth, errors, usage, the chat route) and one registered
subclass per style.
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

import orjson
from aiohttp import web

from relaygate.emulator.base import EarlyResponse, Provider, StreamPlan
from relaygate.emulator.knobs import Knobs
from relaygate.emulator.openai import OpenAIEmulator, _Answer
from relaygate.emulator.vendors_answer import completion, frame, stream_plan
from relaygate.emulator.vendors_errors import (
    error_request_id_key,
    glm_error,
    in_body_code,
    in_body_error,
    midstream_error,
)
from relaygate.emulator.vendors_request import parameter_refusal, verify_zhipu_jwt
from relaygate.emulator.vendors_styles import STYLES, Style

__all__ = ["STYLES", "VENDOR_EMULATORS", "Style", "VendorEmulator", "verify_zhipu_jwt"]


class VendorEmulator(OpenAIEmulator):
    """The OpenAI chat dialect as ``style`` speaks it."""

    style: ClassVar[Style]
    obfuscation: ClassVar[bool] = False
    missing_messages: ClassVar[str] = "messages must not be empty"

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
        if self.style.errors == "glm":
            return self.json_response(glm_error(status, message), status)
        resp = super().error(status, message, param=param)
        key = error_request_id_key(self.style)
        if key is not None:
            obj = orjson.loads(resp.body)  # type: ignore[arg-type]
            obj[key] = self.core.ids("req-")
            return self.json_response(obj, status)
        return resp

    def in_body_error(self, code: int) -> dict[str, Any]:
        return in_body_error(self.style, code, self.core.ids)

    def midstream_error_frame(self) -> bytes:
        err = midstream_error(self.style, self.core.ids)
        if err is not None:
            return self._frame(err)
        return super().midstream_error_frame()

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
        return frame(self.style, obj, self.sse_eol)

    async def chat(self, request: web.Request, knobs: Knobs, body: Any) -> web.StreamResponse:
        body, model = self.chat_request(request, body)
        stream = body.get("stream") is True
        code = in_body_code(self.style, model)
        if code is not None:
            err = self.in_body_error(code)
            if stream and self.style.errors == "spark":
                plan = StreamPlan(b"", [], self._frame(err), b"")
                return await self.send_stream(request, knobs, plan, None)
            return await self.send_json(request, knobs, err)
        refusal = parameter_refusal(self.style, body, model)
        if refusal is not None:
            raise EarlyResponse(self.error(400, refusal))
        trigger = await self.gate(knobs, model)
        ans = self._compose(body, knobs, model)
        self.last_usage = self.usage(ans)
        cid = self.core.ids("chatcmpl-")
        created = int(time.time())
        if stream:
            plan = stream_plan(
                self.style,
                body,
                ans,
                knobs,
                cid=cid,
                created=created,
                model=model,
                include=self.include_usage(body),
                last_usage=self.last_usage,
                ids=self.core.ids,
                eol=self.sse_eol,
                error_frame=self.midstream_error_frame,
            )
            return await self.send_stream(request, knobs, plan, trigger)
        obj = completion(self.style, body, ans, cid, created, model, self.last_usage, self.core.ids)
        return await self.send_json(request, knobs, obj)


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
