"""Tencent Hunyuan native emulator: TencentCloud API 3.0 (``POST /``), actions
``ChatCompletions`` and ``GetEmbedding``, version ``2023-09-01``.

* Every request is authenticated as TencentCloud does: the ``Authorization`` header's
  ``TC3-HMAC-SHA256`` signature is recomputed from the request (host, action, body,
  timestamp) with the configured secret — ``Knobs.api_key`` as ``SecretId|SecretKey``
  (an ``AppId|`` prefix is ignored), :data:`DEFAULT_KEY` when it is None — and a
  mismatch answers ``AuthFailure.SignatureFailure``; an unknown SecretId
  ``AuthFailure.SecretIdNotFound``; a timestamp more than 300 s away
  ``AuthFailure.SignatureExpire``.
* ``ChatCompletions`` checks the order of ``Messages`` as Hunyuan documents it (system
  optional and first; user (tool) and assistant alternate, starting with user and ending
  with user (tool); tool results may repeat) and answers ``InvalidParameter`` otherwise;
  ``Seed`` must be an integer from 1 to 10000 (``InvalidParameterValue``).
* Errors are HTTP 200 bodies ``{"Response": {"Error": {"Code", "Message"}, "RequestId"}}``;
  the ``error-NNN`` triggers and ``fail_status`` map the status to a code (:data:`CODES`).
* Streams: unwrapped ``data: {"Choices":[{"Delta":…,"FinishReason":""}],"Usage":…}``
  events; the last has ``FinishReason`` ``"stop"`` (or ``"tool_calls"``); no ``[DONE]``.
  A mid-stream error is ``data: {"Response":{"Error":…}}``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from datetime import UTC, datetime
from typing import Any, ClassVar

import orjson
from aiohttp import web

from relaygate.emulator.base import (
    EarlyResponse,
    Provider,
    StreamPlan,
    count_tokens,
    embedding_vector,
    sample_arguments,
    split_text,
)
from relaygate.emulator.knobs import Knobs

__all__ = ["CODES", "DEFAULT_KEY", "TencentEmulator"]

#: the credential checked when ``Knobs.api_key`` is None
DEFAULT_KEY = "AKIDrelaygateEmulator|relaygate-emulator-secret"
VERSION = "2023-09-01"
#: HTTP status of an injected failure → the TencentCloud error code reported for it
CODES = {
    400: ("InvalidParameter", "Invalid parameter (emulated error)."),
    401: ("AuthFailure.SignatureFailure", "The provided credentials could not be validated."),
    403: ("AuthFailure.UnauthorizedOperation", "The request is not authorized."),
    404: ("ResourceNotFound", "The resource does not exist."),
    429: ("RequestLimitExceeded", "Your request frequency has exceeded the limit."),
    500: ("InternalError", "Internal error."),
    503: ("ResourceInsufficient.ChargeResourceExhaust", "Insufficient resources."),
}
_ALGORITHM = "TC3-HMAC-SHA256"
_SIGNED_HEADERS = "content-type;host;x-tc-action"
_NOTE = "以上内容为AI生成，不代表开发者立场，请勿删除或修改本标记"


def _signature(
    secret_key: str, ts: int, content_type: str, host: str, action: str, body: bytes
) -> str:
    """TC3-HMAC-SHA256 as TencentCloud verifies it (written apart from the gateway's
    ``providers/tc3.py`` on purpose: the emulator checks the adaptor, not itself)."""
    date = datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d")
    canonical = "\n".join(
        (
            "POST",
            "/",
            "",
            f"content-type:{content_type}\nhost:{host}\nx-tc-action:{action.lower()}\n",
            _SIGNED_HEADERS,
            hashlib.sha256(body).hexdigest(),
        )
    )
    to_sign = "\n".join(
        (
            _ALGORITHM,
            str(ts),
            f"{date}/hunyuan/tc3_request",
            hashlib.sha256(canonical.encode()).hexdigest(),
        )
    )
    key = ("TC3" + secret_key).encode()
    for part in (date, "hunyuan", "tc3_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


class TencentEmulator(Provider):
    name: ClassVar[str] = "tencent"
    base_path: ClassVar[str] = ""
    default_key: ClassVar[str | None] = DEFAULT_KEY

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/", self.api(self.action))

    # -- errors / auth --------------------------------------------------------------------
    def tc_error(self, code: str, message: str) -> web.Response:
        rid = self.core.ids("")
        payload = {"Response": {"Error": {"Code": code, "Message": message}, "RequestId": rid}}
        return self.json_response(payload)  # HTTP 200, as TencentCloud does

    def error(
        self, status: int, message: str | None = None, *, param: str | None = None
    ) -> web.Response:
        code, text = CODES.get(status, ("InternalError", "Internal error."))
        return self.tc_error(code, message or text)

    def invalid_json(self) -> web.Response:
        return self.tc_error("InvalidParameter", "The request body is not valid JSON.")

    async def not_found(self, request: web.Request, knobs: Knobs, body: Any) -> web.Response:
        return self.tc_error("InvalidAction", "The action does not exist.")

    def check_request(self, request: web.Request, knobs: Knobs) -> None:
        if request.headers.get("X-TC-Version") != VERSION:
            raise EarlyResponse(
                self.tc_error("InvalidParameterValue", "X-TC-Version must be 2023-09-01.")
            )

    async def _authenticate(self, request: web.Request, knobs: Knobs, action: str) -> None:
        if not knobs.require_auth:
            return
        parts = (knobs.api_key or DEFAULT_KEY).split("|")
        secret_id, secret_key = parts[-2], parts[-1]
        auth = request.headers.get("Authorization", "")
        fields: dict[str, str] = {}
        if auth.startswith(_ALGORITHM + " "):
            for item in auth[len(_ALGORITHM) + 1 :].split(","):
                name, _, value = item.strip().partition("=")
                fields[name] = value
        credential = fields.get("Credential", "").split("/")
        if len(credential) != 4 or "Signature" not in fields:
            raise EarlyResponse(
                self.tc_error("AuthFailure.InvalidAuthorization", "Authorization is invalid.")
            )
        if credential[0] != secret_id:
            raise EarlyResponse(
                self.tc_error("AuthFailure.SecretIdNotFound", "The SecretId is not found.")
            )
        try:
            ts = int(request.headers.get("X-TC-Timestamp", ""))
        except ValueError:
            ts = 0
        if abs(time.time() - ts) > 300:
            raise EarlyResponse(
                self.tc_error("AuthFailure.SignatureExpire", "The signature has expired.")
            )
        date = datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d")
        if credential[1] != date or credential[2] != "hunyuan" or credential[3] != "tc3_request":
            raise EarlyResponse(
                self.tc_error("AuthFailure.SignatureFailure", "The credential scope is wrong.")
            )
        expected = _signature(
            secret_key,
            ts,
            request.headers.get("Content-Type", ""),
            request.headers.get("Host", ""),
            action,
            await request.read(),
        )
        if fields.get("SignedHeaders") != _SIGNED_HEADERS or fields["Signature"] != expected:
            raise EarlyResponse(
                self.tc_error(
                    "AuthFailure.SignatureFailure",
                    "The provided credentials could not be validated. "
                    "Please check your signature is correct.",
                )
            )

    async def action(self, request: web.Request, knobs: Knobs, body: Any) -> web.StreamResponse:
        action = request.headers.get("X-TC-Action", "")
        if action not in ("ChatCompletions", "GetEmbedding"):
            raise EarlyResponse(self.tc_error("InvalidAction", f"Action {action!r} not found."))
        await self._authenticate(request, knobs, action)
        if not isinstance(body, dict):
            raise EarlyResponse(self.tc_error("InvalidParameter", "The body must be an object."))
        if action == "GetEmbedding":
            return await self.embeddings(request, knobs, body)
        return await self.chat(request, knobs, body)

    # -- chat -----------------------------------------------------------------------------
    def _validate(self, body: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
        model = body.get("Model")
        if not isinstance(model, str) or not model:
            raise EarlyResponse(self.tc_error("MissingParameter", "Model is required."))
        messages = body.get("Messages")
        if not isinstance(messages, list) or not messages:
            raise EarlyResponse(self.tc_error("MissingParameter", "Messages is required."))
        for i, msg in enumerate(messages):
            role = msg.get("Role") if isinstance(msg, dict) else None
            if role not in ("system", "user", "assistant", "tool") or (role == "system" and i):
                raise EarlyResponse(
                    self.tc_error("InvalidParameterValue", f"Messages[{i}].Role is invalid.")
                )
        self._check_order(messages)
        seed = body.get("Seed")
        if seed is not None and (
            isinstance(seed, bool) or not isinstance(seed, int) or not 1 <= seed <= 10000
        ):
            raise EarlyResponse(
                self.tc_error("InvalidParameterValue", "Seed must be an integer in [1, 10000].")
            )
        return model, messages

    def _check_order(self, messages: list[dict[str, Any]]) -> None:
        """Hunyuan's documented order: system optional and first; user (tool) and assistant
        alternate, starting with user and ending with user (tool); tool may repeat.
        A user message right after a tool result is let through (not documented either way)."""
        turns = [(i, m["Role"]) for i, m in enumerate(messages) if m["Role"] != "system"]
        for j, (i, role) in enumerate(turns):
            prev = turns[j - 1][1] if j else None
            bad = (
                (j == 0 and role != "user")
                or (role == "user" and prev == "user")
                or (role == "assistant" and prev == "assistant")
                or (role == "tool" and prev not in ("assistant", "tool"))
                or (j == len(turns) - 1 and role == "assistant")
            )
            if bad:
                raise EarlyResponse(
                    self.tc_error(
                        "InvalidParameter",
                        f"Messages[{i}]: user (tool) and assistant must alternate, starting "
                        "with user and ending with user (tool).",
                    )
                )
        if not turns:
            raise EarlyResponse(self.tc_error("InvalidParameter", "Messages has no user message."))

    async def chat(
        self, request: web.Request, knobs: Knobs, body: dict[str, Any]
    ) -> web.StreamResponse:
        model, messages = self._validate(body)
        trigger = await self.gate(knobs, model)
        prompt = max(1, sum(3 + count_tokens(str(m.get("Content") or "")) for m in messages))
        last = messages[-1]
        tools = body.get("Tools")
        call: dict[str, Any] | None = None
        if last.get("Role") == "tool":
            text = "The tool returned: " + str(last.get("Content") or "")
        elif isinstance(tools, list) and tools and body.get("ToolChoice") != "none":
            tool = body.get("CustomTool") if body.get("ToolChoice") == "custom" else tools[0]
            fn = tool.get("Function") if isinstance(tool, dict) else None
            fn = fn if isinstance(fn, dict) else {}
            try:
                schema = json.loads(fn.get("Parameters") or "{}")
            except ValueError:
                raise EarlyResponse(
                    self.tc_error("InvalidParameterValue", "Tools.Function.Parameters is not JSON.")
                ) from None
            call = {
                "Id": self.core.ids("call_"),
                "Type": "function",
                "Function": {
                    "Name": fn.get("Name") or "tool",
                    "Arguments": json.dumps(sample_arguments(schema)),
                },
                "Index": 0,
            }
            text = ""
        else:
            text = knobs.reply
        completion = max(1, count_tokens(text) + (10 if call else 0))
        usage = {
            "PromptTokens": prompt,
            "CompletionTokens": completion,
            "TotalTokens": prompt + completion,
        }
        rid = self.core.ids("")
        created = int(time.time())
        finish = "tool_calls" if call else "stop"
        if body.get("Stream") is True:
            return await self.send_stream(
                request, knobs, self._plan(rid, created, text, call, usage, finish, knobs), trigger
            )
        message: dict[str, Any] = {"Role": "assistant", "Content": text}
        if call is not None:
            message["ToolCalls"] = [call]
        payload = {
            "Response": {
                "RequestId": rid,
                "Note": _NOTE,
                "Choices": [{"Index": 0, "Message": message, "FinishReason": finish}],
                "Created": created,
                "Id": rid,
                "Usage": usage,
            }
        }
        return await self.send_json(request, knobs, payload)

    def _plan(
        self,
        rid: str,
        created: int,
        text: str,
        call: dict[str, Any] | None,
        usage: dict[str, int],
        finish: str,
        knobs: Knobs,
    ) -> StreamPlan:
        def event(delta: dict[str, Any], reason: str, used: int) -> bytes:
            obj = {
                "Note": _NOTE,
                "Choices": [{"Index": 0, "Delta": delta, "FinishReason": reason}],
                "Created": created,
                "Id": rid,
                "Usage": {
                    "PromptTokens": usage["PromptTokens"],
                    "CompletionTokens": used,
                    "TotalTokens": usage["PromptTokens"] + used,
                },
            }
            return b"data: " + orjson.dumps(obj) + b"\n\n"

        chunks: list[bytes] = []
        used = 0
        for piece in split_text(text, knobs.chunks) if text else ():
            used += count_tokens(piece)
            chunks.append(event({"Role": "assistant", "Content": piece}, "", used))
        final: dict[str, Any] = {"Role": "assistant", "Content": ""}
        if call is not None:
            final["ToolCalls"] = [call]
        tail = event(final, finish, usage["CompletionTokens"])
        error = (
            b"data: "
            + orjson.dumps(
                {
                    "Response": {
                        "Error": {"Code": "InternalError", "Message": "Internal error."},
                        "RequestId": rid,
                    }
                }
            )
            + b"\n\n"
        )
        return StreamPlan(b"", chunks, tail, error)

    # -- embeddings -----------------------------------------------------------------------
    async def embeddings(
        self, request: web.Request, knobs: Knobs, body: dict[str, Any]
    ) -> web.StreamResponse:
        items = body.get("InputList")
        if items is None and isinstance(body.get("Input"), str):
            items = [body["Input"]]
        if not isinstance(items, list) or not items or not all(isinstance(x, str) for x in items):
            raise EarlyResponse(
                self.tc_error("MissingParameter", "Input or InputList is required.")
            )
        await self.gate(knobs, str(body.get("Model") or "hunyuan-embedding"))
        tokens = sum(count_tokens(x) for x in items)
        data = [
            {
                "Embedding": embedding_vector(x, knobs.embedding_dim),
                "Index": i,
                "Object": "embedding",
            }
            for i, x in enumerate(items)
        ]
        payload = {
            "Response": {
                "Data": data,
                "Usage": {"PromptTokens": tokens, "TotalTokens": tokens},
                "RequestId": self.core.ids(""),
            }
        }
        return await self.send_json(request, knobs, payload)
