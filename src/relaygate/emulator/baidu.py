"""Baidu ERNIE v1 (wenxinworkshop) emulator: the OAuth token endpoint, chat and embeddings.

* ``POST /oauth/2.0/token?grant_type=client_credentials&client_id=…&client_secret=…``
  issues ``access_token``s (``expires_in`` = the token lifetime, default 30 days); a wrong
  pair (``Knobs.api_key`` = ``"API_KEY|SECRET_KEY"``; None: any non-empty pair) gets
  ``{"error": "invalid_client", …}`` with HTTP 401.
* ``POST /rpc/2.0/ai_custom/v1/wenxinworkshop/chat/{endpoint}?access_token=…`` and
  ``…/embeddings/{endpoint}`` check the token: unknown or revoked → ``error_code`` 110,
  expired → 111, both with HTTP 200 as Baidu does.
* Errors are HTTP 200 bodies ``{"error_code": N, "error_msg": …}``: the ``error-NNN``
  triggers and ``fail_status`` map the status to a Baidu code (:data:`CODES`), and the
  model (endpoint) ``error-code-N`` answers with code N itself.
* ``response_format`` may be ``"text"`` or ``"json_object"`` (else 336003); with
  ``"json_object"`` the answer is the JSON text ``{"reply": <the reply knob>}``.
* Streams: ``data: {…"result": piece, "is_end": false, "usage": …}`` events, the last
  with ``"is_end": true``, no ``[DONE]``; ``usage.total_tokens`` is cumulative.
* ``POST /_emulator/baidu`` with ``{"token_ttl": seconds}`` sets the lifetime of tokens
  issued from then on, ``{"revoke": true}`` revokes every issued token, and
  ``{"expire": true}`` makes every issued token expired (111); ``GET /_emulator/baidu``
  says how many tokens were issued.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any, ClassVar

import orjson
from aiohttp import web

from relaygate.emulator.base import (
    Core,
    EarlyResponse,
    Provider,
    StreamPlan,
    count_tokens,
    embedding_vector,
    sample_arguments,
    split_text,
)
from relaygate.emulator.knobs import Knobs

__all__ = ["CODES", "BaiduEmulator"]

_PREFIX = "/rpc/2.0/ai_custom/v1/wenxinworkshop"
#: HTTP status of an injected failure → the Baidu error code reported for it
CODES = {
    400: (336003, "the length of messages must be an odd number"),
    401: (14, "IAM Certification failed"),
    403: (6, "No permission to access data"),
    404: (336005, "API name not exist"),
    429: (18, "Open api qps request limit reached"),
    500: (336000, "Internal error"),
    503: (336100, "Server high load"),
}
_MESSAGES = {
    110: "Access token invalid or no longer valid",
    111: "Access token expired",
    17: "Open api daily request limit reached",
    336501: "Rate limit reached for RPM",
    336502: "Rate limit reached for TPM",
}
_CODE_TRIGGER = re.compile(r"^error-code-(\d+)$")
_EMBEDDINGS = ("embedding-v1", "bge_large_zh", "bge_large_en", "tao_8k")


def _error_body(code: int, message: str) -> dict[str, Any]:
    return {"error_code": code, "error_msg": message}


class BaiduEmulator(Provider):
    name: ClassVar[str] = "baidu"
    base_path: ClassVar[str] = ""

    def __init__(self, core: Core) -> None:
        super().__init__(core)
        self.tokens: dict[str, float] = {}  # access token -> expires at (monotonic)
        self.token_ttl = 2592000.0
        self.issued = 0

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/oauth/2.0/token", self.api(self.token, checks=False))
        app.router.add_post(_PREFIX + "/chat/{endpoint}", self.api(self.chat))
        app.router.add_post(_PREFIX + "/embeddings/{endpoint}", self.api(self.embeddings))
        app.router.add_post("/_emulator/baidu", self.control)
        app.router.add_get("/_emulator/baidu", self.control)

    # -- errors / auth --------------------------------------------------------------------
    def error(
        self, status: int, message: str | None = None, *, param: str | None = None
    ) -> web.Response:
        code, text = CODES.get(status, (336000, "Internal error"))
        return self.baidu_error(code, message or text)

    def baidu_error(self, code: int, message: str | None = None) -> web.Response:
        text = message or _MESSAGES.get(code, f"emulated error {code}")
        return self.json_response(_error_body(code, text))  # HTTP 200, as Baidu does

    def invalid_json(self) -> web.Response:
        return self.baidu_error(336002, "Invalid JSON")

    async def not_found(self, request: web.Request, knobs: Knobs, body: Any) -> web.Response:
        return self.baidu_error(3, "Unsupported openapi method")

    def check_request(self, request: web.Request, knobs: Knobs) -> None:
        if not knobs.require_auth:
            return
        token = request.query.get("access_token", "")
        expires = self.tokens.get(token)
        if expires is None:
            raise EarlyResponse(self.baidu_error(110))
        if expires <= time.monotonic():
            raise EarlyResponse(self.baidu_error(111))

    async def control(self, request: web.Request) -> web.Response:
        if request.method == "POST":
            changes = await request.json()
            if "token_ttl" in changes:
                self.token_ttl = float(changes["token_ttl"])
            if changes.get("revoke"):
                self.tokens.clear()
            if changes.get("expire"):
                self.tokens = dict.fromkeys(self.tokens, 0.0)
        return self.json_response(
            {"issued": self.issued, "live": len(self.tokens), "token_ttl": self.token_ttl}
        )

    # -- token ----------------------------------------------------------------------------
    async def token(self, request: web.Request, knobs: Knobs, body: Any) -> web.StreamResponse:
        q = request.query
        cid, secret = q.get("client_id", ""), q.get("client_secret", "")
        if q.get("grant_type") != "client_credentials":
            return self.json_response(
                {"error": "unsupported_grant_type", "error_description": "unsupported grant type"},
                400,
            )
        wrong = not cid or not secret
        if knobs.api_key is not None and f"{cid}|{secret}" != knobs.api_key:
            wrong = True
        if wrong:
            self.stats._bump("errors")
            return self.json_response(
                {"error": "invalid_client", "error_description": "unknown client id"}, 401
            )
        await self.delay(knobs)
        token = "24." + self.core.ids("") + ".2592000.1800000000.282335-0000"
        self.tokens[token] = time.monotonic() + self.token_ttl
        self.issued += 1
        return self.json_response(
            {
                "refresh_token": "25." + self.core.ids(""),
                "expires_in": int(self.token_ttl),
                "session_key": "emulated",
                "access_token": token,
                "scope": "public brain_all_scope wenxinworkshop_mgr",
                "session_secret": "emulated",
            }
        )

    # -- chat -----------------------------------------------------------------------------
    def _validate(self, body: Any) -> list[dict[str, Any]]:
        if not isinstance(body, dict):
            raise EarlyResponse(self.baidu_error(336003, "the request body must be an object"))
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise EarlyResponse(self.baidu_error(336003, "messages is empty"))
        if len(messages) % 2 == 0:
            raise EarlyResponse(
                self.baidu_error(336003, "the length of messages must be an odd number")
            )
        for i, msg in enumerate(messages):
            role = msg.get("role") if isinstance(msg, dict) else None
            want = ("assistant",) if i % 2 else ("user", "function")
            if role not in want:
                raise EarlyResponse(self.baidu_error(336003, f"invalid role in message {i}"))
        return messages

    async def chat(self, request: web.Request, knobs: Knobs, body: Any) -> web.StreamResponse:
        endpoint = request.match_info["endpoint"]
        m = _CODE_TRIGGER.match(endpoint)
        if m:
            raise EarlyResponse(self.baidu_error(int(m.group(1))))
        messages = self._validate(body)
        fmt = body.get("response_format")
        if fmt is not None and fmt not in ("text", "json_object"):
            raise EarlyResponse(self.baidu_error(336003, "response_format is invalid"))
        trigger = await self.gate(knobs, endpoint)
        prompt = max(
            1,
            count_tokens(str(body.get("system") or ""))
            + sum(3 + count_tokens(str(msg.get("content") or "")) for msg in messages),
        )
        last = messages[-1]
        functions = body.get("functions")
        call: dict[str, Any] | None = None
        if last.get("role") == "function":
            text = "The function returned: " + str(last.get("content") or "")
        elif isinstance(functions, list) and functions and isinstance(functions[0], dict):
            fn = functions[0]
            choice = body.get("tool_choice")
            if isinstance(choice, dict):
                wanted = (choice.get("function") or {}).get("name")
                fn = next((f for f in functions if f.get("name") == wanted), fn)
            call = {
                "name": fn.get("name") or "function",
                "arguments": json.dumps(sample_arguments(fn.get("parameters"))),
                "thoughts": "I should call the function.",
            }
            text = ""
        elif fmt == "json_object":
            text = json.dumps({"reply": knobs.reply}, ensure_ascii=False)
        else:
            text = knobs.reply
        completion = max(1, count_tokens(text) + (10 if call else 0))
        rid = self.core.ids("as-")
        created = int(time.time())
        if body.get("stream") is True:
            plan = self._plan(rid, created, text, call, prompt, knobs)
            return await self.send_stream(request, knobs, plan, trigger)
        payload: dict[str, Any] = {
            "id": rid,
            "object": "chat.completion",
            "created": created,
            "result": text,
            "is_truncated": False,
            "need_clear_history": False,
            "finish_reason": "function_call" if call else "normal",
            "usage": {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
            },
        }
        if call is not None:
            payload["function_call"] = call
        return await self.send_json(request, knobs, payload)

    def _plan(
        self,
        rid: str,
        created: int,
        text: str,
        call: dict[str, Any] | None,
        prompt: int,
        knobs: Knobs,
    ) -> StreamPlan:
        done = 0

        def event(n: int, result: str, end: bool, **more: Any) -> bytes:
            nonlocal done
            piece = count_tokens(result)
            done += piece
            obj = {
                "id": rid,
                "object": "chat.completion",
                "created": created,
                "sentence_id": n,
                "is_end": end,
                "is_truncated": False,
                "result": result,
                "need_clear_history": False,
                "finish_reason": "normal",
                "usage": {
                    "prompt_tokens": prompt,
                    "completion_tokens": piece,
                    "total_tokens": prompt + done,
                },
                **more,
            }
            return b"data: " + orjson.dumps(obj) + b"\n\n"

        pieces = split_text(text, knobs.chunks) if text else ()
        chunks = [event(i, p, False) for i, p in enumerate(pieces)]
        if call is not None:
            done += 10
            tail = event(len(chunks), "", True, function_call=call, finish_reason="function_call")
        else:
            tail = event(len(chunks), "", True)
        error = b"data: " + orjson.dumps(_error_body(336100, "Server high load")) + b"\n\n"
        return StreamPlan(b"", chunks, tail, error)

    # -- embeddings -----------------------------------------------------------------------
    async def embeddings(self, request: web.Request, knobs: Knobs, body: Any) -> web.StreamResponse:
        endpoint = request.match_info["endpoint"]
        m = _CODE_TRIGGER.match(endpoint)
        if m:
            raise EarlyResponse(self.baidu_error(int(m.group(1))))
        await self.gate(knobs, endpoint)
        if endpoint not in _EMBEDDINGS:
            raise EarlyResponse(self.baidu_error(336005, "API name not exist"))
        items = body.get("input") if isinstance(body, dict) else None
        if not isinstance(items, list) or not items or not all(isinstance(x, str) for x in items):
            raise EarlyResponse(self.baidu_error(336003, "input must be a list of strings"))
        tokens = sum(count_tokens(x) for x in items)
        data = [
            {
                "object": "embedding",
                "embedding": embedding_vector(x, knobs.embedding_dim),
                "index": i,
            }
            for i, x in enumerate(items)
        ]
        payload = {
            "id": self.core.ids("as-"),
            "object": "embedding_list",
            "created": int(time.time()),
            "data": data,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
        return await self.send_json(request, knobs, payload)
