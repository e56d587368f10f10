"""iFlytek Spark WebSocket emulator (the legacy chat API: ``GET /v3.5/chat`` and the
other versioned paths, upgraded to a WebSocket).

The upgrade request is checked like Spark's gateway does: the query's ``authorization``
(base64 of ``api_key="…", algorithm="hmac-sha256", headers="host date request-line",
signature="…"``), ``date`` and ``host``; the signature is recomputed with the configured
APISecret over ``host: {host}\\ndate: {date}\\nGET {path} HTTP/1.1``. A bad or missing
signature or an unknown key is answered **401** ``{"message": "HMAC signature does not
match"}``, a date more than 300 s away from the server's clock **403** ``{"message": "HMAC
signature cannot be verified, a valid date or x-date header is required for HMAC
Authentication"}``: HTTP answers to the upgrade, no WebSocket.

Credentials: ``Knobs.api_key`` is the channel key ``APPID|APISecret|APIKey``
(:data:`DEFAULT_KEY` when None); the request frame's ``header.app_id`` must be the APPID.
The upgrade is recorded as a ``GET`` request and the request frame after it as a request
of method ``WS`` whose body is the frame.

After the upgrade the client sends one frame; the answer is frames of
``{"header": {"code", "message", "sid", "status"}, "payload": {"choices": {"status",
"seq", "text": [{"content", "role", "index"}]}}}``, ``header.status`` 0 on the first, 1
after, 2 on the last, which carries ``payload.usage.text``. With ``payload.functions``
(and no function result as the last turn) the answer is one ``status: 2`` frame with
``text[0].function_call {name, arguments}``. Errors are frames with ``header.code != 0``
and ``status: 2``, after which the server closes: the ``error-NNN`` model triggers (HTTP
statuses) map to Spark codes (:data:`CODE_OF_STATUS`), ``error-NNNNN`` sends that Spark
code itself (``error-10013``: content moderation). Knobs: ``latency_ms``/``first_token_ms``
before the first frame, ``chunks`` text frames ``chunk_interval_ms`` apart, ``cut_after``
(and ``error-cut``) closes the connection after that many frames, ``midstream_error``
(and ``error-midstream``) sends error 10012 after the first frame, ``hang``.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import re
import time
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar

import orjson
from aiohttp import ClientConnectionResetError, web

from relaygate.emulator.base import (
    _STREAMING,
    EarlyResponse,
    Provider,
    count_tokens,
    sample_arguments,
    split_text,
)
from relaygate.emulator.knobs import Knobs, RecordedRequest

__all__ = ["CODE_OF_STATUS", "DEFAULT_KEY", "SparkWSEmulator"]

DEFAULT_KEY = "spark-app|spark-secret|spark-key"
MAX_SKEW = 300.0  # seconds between the signed date and the server's clock
BAD_SIGNATURE = "HMAC signature does not match"
BAD_DATE = (
    "HMAC signature cannot be verified, a valid date or x-date header is required for "
    "HMAC Authentication"
)
#: the ``error-NNN`` triggers (HTTP statuses) as Spark ``header.code`` values
CODE_OF_STATUS: dict[int, int] = {
    400: 10163,  # parameter check failed
    401: 11200,  # not authorised
    403: 11200,
    413: 10907,  # too many tokens
    429: 11202,  # requests per second over the limit
}
_MESSAGES: dict[int, str] = {
    10013: "输入内容审核不通过，涉嫌违规，请重新调整输入内容",
    10014: "输出内容涉及敏感信息，审核不通过，后续结果无法展示给用户",
    10019: "表示本次会话内容有涉及违规信息的倾向",
    10163: "request parameter error: schema validate failed",
    10313: "appid和apikey不匹配",
    10907: "token数量超过上限",
    11200: "授权错误：该appId没有相关功能的授权或者业务量超过限制",
    11201: "授权错误：日流控超限",
    11202: "授权错误：秒级流控超限",
    11203: "授权错误：并发流控超限",
    10012: "EngineInternalError",
}
_SPARK_TRIGGER = re.compile(r"^error-(\d{5})$")
_AUTH_FIELD = re.compile(r'(\w+)="([^"]*)"')


def _text(messages: list[Any]) -> str:
    return "".join(str(m.get("content") or "") for m in messages if isinstance(m, dict))


class SparkWSEmulator(Provider):
    name: ClassVar[str] = "spark_ws"
    base_path: ClassVar[str] = ""
    default_key: ClassVar[str | None] = DEFAULT_KEY

    def add_routes(self, app: web.Application) -> None:
        handler = self.api(self.chat)
        app.router.add_get("/{version}/chat", handler)
        app.router.add_get("/chat/{name}", handler)

    # -- errors / auth --------------------------------------------------------------------
    def error(
        self, status: int, message: str | None = None, *, param: str | None = None
    ) -> web.Response:
        return self.json_response({"message": message or "Internal Server Error"}, status)

    def invalid_json(self) -> web.Response:
        return self.error(400, "Bad Request")

    async def not_found(self, request: web.Request, knobs: Knobs, body: Any) -> web.Response:
        return self.error(404, "no Route matched with those values")

    @staticmethod
    def credentials(knobs: Knobs) -> tuple[str, str, str]:
        app_id, secret, key = (knobs.api_key or DEFAULT_KEY).split("|")
        return app_id, secret, key

    def check_request(self, request: web.Request, knobs: Knobs) -> None:
        if not knobs.require_auth:
            return
        _, secret, key = self.credentials(knobs)
        query = request.query
        authorization, date, host = query.get("authorization"), query.get("date"), query.get("host")
        if not authorization or not date or not host:
            raise EarlyResponse(self.error(401, BAD_SIGNATURE))
        try:
            signed = parsedate_to_datetime(date).timestamp()
        except (TypeError, ValueError):
            raise EarlyResponse(self.error(403, BAD_DATE)) from None
        if abs(time.time() - signed) > MAX_SKEW:
            raise EarlyResponse(self.error(403, BAD_DATE))
        try:
            fields = dict(_AUTH_FIELD.findall(base64.b64decode(authorization).decode()))
        except ValueError:
            raise EarlyResponse(self.error(401, BAD_SIGNATURE)) from None
        origin = f"host: {host}\ndate: {date}\nGET {request.path} HTTP/1.1"
        expected = base64.b64encode(
            hmac.new(secret.encode(), origin.encode(), hashlib.sha256).digest()
        ).decode()
        if (
            host != request.headers.get("Host")
            or fields.get("api_key") != key
            or fields.get("algorithm") != "hmac-sha256"
            or fields.get("headers") != "host date request-line"
            or not hmac.compare_digest(fields.get("signature", ""), expected)
        ):
            raise EarlyResponse(self.error(401, BAD_SIGNATURE))

    # -- frames ---------------------------------------------------------------------------
    @staticmethod
    def error_frame(code: int, sid: str, message: str | None = None) -> str:
        header = {
            "code": code,
            "message": message or _MESSAGES.get(code, "error"),
            "sid": sid,
            "status": 2,
        }
        return orjson.dumps({"header": header}).decode()

    @staticmethod
    def frame(
        sid: str,
        status: int,
        seq: int,
        item: dict[str, Any],
        usage: dict[str, int] | None = None,
    ) -> str:
        payload: dict[str, Any] = {
            "choices": {"status": status, "seq": seq, "text": [{**item, "index": 0}]}
        }
        if usage is not None:
            payload["usage"] = {"text": usage}
        return orjson.dumps(
            {
                "header": {"code": 0, "message": "Success", "sid": sid, "status": status},
                "payload": payload,
            }
        ).decode()

    def _check_frame(self, frame: Any, app_id: str) -> tuple[str, list[Any], list[Any]] | int:
        """(domain, messages, functions) of a valid request frame, else a Spark code."""
        if not isinstance(frame, dict):
            return 10163
        header, parameter, payload = (frame.get(k) for k in ("header", "parameter", "payload"))
        if not isinstance(header, dict) or not isinstance(payload, dict):
            return 10163
        if header.get("app_id") != app_id:
            return 10313
        chat = parameter.get("chat") if isinstance(parameter, dict) else None
        domain = chat.get("domain") if isinstance(chat, dict) else None
        message = payload.get("message")
        texts = message.get("text") if isinstance(message, dict) else None
        if not isinstance(domain, str) or not isinstance(texts, list) or not texts:
            return 10163
        for m in texts:
            if (
                not isinstance(m, dict)
                or m.get("role") not in ("system", "user", "assistant")
                or not isinstance(m.get("content"), str)
            ):
                return 10163
        functions = payload.get("functions")
        listed = functions.get("text") if isinstance(functions, dict) else None
        return domain, texts, listed if isinstance(listed, list) else []

    # -- the chat socket ------------------------------------------------------------------
    async def chat(self, request: web.Request, knobs: Knobs, body: Any) -> web.StreamResponse:
        ws = web.WebSocketResponse()
        if not ws.can_prepare(request).ok:
            raise EarlyResponse(self.error(400, "a WebSocket upgrade is required"))
        await ws.prepare(request)
        sid = self.core.ids("cht000")
        try:
            await self._answer(request, ws, knobs, sid)
        except (ConnectionResetError, ClientConnectionResetError):
            self._lost(None)
        except asyncio.CancelledError:  # the client went away (handler cancellation)
            if request.get(_STREAMING) and not self.core.stopping:
                self._lost(None)
            raise
        finally:
            if not ws.closed:
                await ws.close()
        return ws

    async def _answer(
        self, request: web.Request, ws: web.WebSocketResponse, knobs: Knobs, sid: str
    ) -> None:
        msg = await ws.receive(timeout=30)
        if msg.type is not web.WSMsgType.TEXT:
            return
        try:
            frame = orjson.loads(msg.data)
        except orjson.JSONDecodeError:
            frame = None
        # the request frame, recorded as a request of its own (``stats.last_body``)
        self.stats._record(
            RecordedRequest("WS", request.path, request.query, request.headers, frame)
        )
        app_id = self.credentials(knobs)[0]
        checked = self._check_frame(frame, app_id if knobs.require_auth else frame_app(frame))
        if isinstance(checked, int):
            self.stats._bump("errors")
            await ws.send_str(self.error_frame(checked, sid))
            return
        domain, messages, functions = checked
        spark = _SPARK_TRIGGER.match(domain)
        if spark:
            self.stats._bump("errors")
            await ws.send_str(self.error_frame(int(spark.group(1)), sid))
            return
        try:
            trigger = await self.gate(knobs, domain)
        except EarlyResponse as early:
            self.stats._bump("errors")
            code = CODE_OF_STATUS.get(early.response.status, 10012)
            await ws.send_str(self.error_frame(code, sid))
            return
        frames = self._frames(knobs, sid, messages, functions)
        await self._send(request, ws, knobs, sid, frames, trigger)

    def _frames(
        self, knobs: Knobs, sid: str, messages: list[Any], functions: list[Any]
    ) -> list[str]:
        prompt = max(1, count_tokens(_text(messages)) + 3 * len(messages))
        question = max(1, count_tokens(_text(messages[-1:])))
        last = str(messages[-1].get("content") or "")
        named = [f for f in functions if isinstance(f, dict) and isinstance(f.get("name"), str)]

        def usage(completion: int) -> dict[str, int]:
            return {
                "question_tokens": question,
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
            }

        if named and not last.startswith("[function result]"):
            fn = named[0]
            arguments = orjson.dumps(sample_arguments(fn.get("parameters"))).decode()
            item = {
                "content": "",
                "role": "assistant",
                "content_type": "function_call",
                "function_call": {"arguments": arguments, "name": fn["name"]},
            }
            return [self.frame(sid, 2, 0, item, usage(count_tokens(arguments) + 10))]
        reply = (
            "The tool returned: " + last if last.startswith("[function result]") else knobs.reply
        )
        pieces = list(split_text(reply, knobs.chunks)) or [""]
        out: list[str] = []
        for i, piece in enumerate(pieces):
            item = {"content": piece, "role": "assistant"}
            if i == len(pieces) - 1:
                out.append(self.frame(sid, 2, i, item, usage(max(1, count_tokens(reply)))))
            else:
                out.append(self.frame(sid, 0 if i == 0 else 1, i, item))
        return out

    async def _send(
        self,
        request: web.Request,
        ws: web.WebSocketResponse,
        knobs: Knobs,
        sid: str,
        frames: list[str],
        trigger: str | None,
    ) -> None:
        stats = self.stats
        request[_STREAMING] = True
        stats._bump("streams_started")
        await self.delay(knobs)
        if knobs.first_token_ms:
            await asyncio.sleep(knobs.first_token_ms / 1000)
        interval = knobs.chunk_interval_ms / 1000
        cut = 1 if trigger == "cut" else knobs.cut_after
        midstream = trigger == "midstream" or knobs.midstream_error
        for i, data in enumerate(frames):
            if cut is not None and i >= cut:
                stats._bump("streams_cut")
                transport = request.transport
                if transport is not None:
                    transport.close()  # no closing handshake: the connection just ends
                return
            if i and interval:
                await asyncio.sleep(interval)
            if midstream and i == 1:
                stats._bump("errors")
                await ws.send_str(self.error_frame(10012, sid))
                return
            if i == len(frames) - 1:
                stats._bump("streams_completed")
            await ws.send_str(data)


def frame_app(frame: Any) -> str:
    """The request frame's app id (any is accepted when auth is off)."""
    header = frame.get("header") if isinstance(frame, dict) else None
    app_id = header.get("app_id") if isinstance(header, dict) else None
    return app_id if isinstance(app_id, str) else ""
