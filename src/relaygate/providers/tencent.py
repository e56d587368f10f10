"""Tencent Hunyuan native adaptor: TencentCloud API 3.0, ``TC3-HMAC-SHA256`` signed
(``docs/providers.md``, "Tencent Hunyuan native"). No I/O of its own.

* Channel key ``SecretId|SecretKey`` (an ``AppId|SecretId|SecretKey`` triple is
  accepted; the AppId is not needed to sign).
* ``POST {base_url}/`` with ``X-TC-Action`` (``ChatCompletions`` / ``GetEmbedding``),
  ``X-TC-Version: 2023-09-01``, ``X-TC-Timestamp``, ``X-TC-Region`` (``config.region``,
  sent when set) and the signed ``Authorization`` (``providers/tc3.py``; the host is the
  base URL's, sent as the ``Host`` header so the signed and the sent host agree).
* Bodies are PascalCase (``Model``, ``Messages`` with ``Role``/``Content``, ``Stream``,
  ``Temperature``, ``TopP``, ``Tools``/``ToolChoice``, ``EnableEnhancement`` — off unless
  ``config.enable_enhancement`` or the client's ``enable_enhancement`` says otherwise).
* Answers are wrapped in ``{"Response": {…}}``; errors come with HTTP 200 as
  ``{"Response": {"Error": {"Code", "Message"}, "RequestId"}}``. Stream events are
  unwrapped (``{"Choices": [{"Delta", "FinishReason"}], "Usage"}``) and end with the
  event whose ``FinishReason`` is not empty (no ``[DONE]``).

Signing needs the time: the adaptor takes a ``clock`` (default ``time.time``), so tests
pass a fixed one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import orjson

from relaygate.errors import InvalidRequest, RelayError, UpstreamError
from relaygate.providers import tc3
from relaygate.providers.base import (
    Target,
    UpstreamRequest,
    Usage,
    error_from_status,
    parse_json_object,
    require_messages,
    usage_chunk,
)
from relaygate.providers.legacy_functions import to_function_call_message, upgrade_legacy_functions

__all__ = ["SERVICE", "VERSION", "TencentAdaptor", "TencentStreamTranslator", "tencent_error"]

SERVICE = "hunyuan"
VERSION = "2023-09-01"

_FINISH = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "sensitive": "content_filter",
    "content_filter": "content_filter",
}


def credentials(api_key: str) -> tuple[str, str]:
    parts = api_key.split("|")
    if len(parts) == 3:
        parts = parts[1:]
    if len(parts) != 2 or not parts[0] or not parts[1]:
        raise UpstreamError(
            "This Tencent channel's key must be SecretId|SecretKey (or AppId|SecretId|SecretKey); "
            "the operator has to fix it.",
            code="upstream_auth_failed",
        )
    return parts[0], parts[1]


def _host(base_url: str) -> str:
    parts = urlsplit(base_url)
    host = (parts.hostname or "").lower()
    default = 443 if parts.scheme == "https" else 80
    return host if parts.port in (None, default) else f"{host}:{parts.port}"


def tencent_error(err: Any, secrets: tuple[str, ...]) -> RelayError:
    """``Response.Error`` (``{"Code", "Message"}``) → the error hierarchy; the error is the
    upstream's answer (HTTP 200), so ``upstream_status`` is 200."""
    code = err.get("Code") if isinstance(err, dict) else None
    message = err.get("Message") if isinstance(err, dict) else None
    code = code if isinstance(code, str) else ""
    text = f"{message if isinstance(message, str) else ''} ({code})" if code else ""
    out: RelayError
    if code.startswith(("AuthFailure", "UnauthorizedOperation")):
        out = error_from_status(401, text, upstream_code=None, secrets=secrets)
    elif code.startswith(("RequestLimitExceeded", "LimitExceeded")):
        out = error_from_status(429, text, upstream_code=None, secrets=secrets)
    elif code.startswith(("InvalidParameter", "MissingParameter", "UnknownParameter")):
        out = error_from_status(400, text, upstream_code=code, secrets=secrets)
    elif code.startswith("ResourceInsufficient"):
        out = UpstreamError("The upstream provider is overloaded; retry shortly.")
    else:  # FailedOperation.*, InternalError, ResourceUnavailable.*, …
        out = UpstreamError(f"The upstream provider failed ({code or 'unknown error'}).")
    out.upstream_status = 200
    return out


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _usage(raw: Any) -> Usage | None:
    if not isinstance(raw, dict):
        return None
    prompt = raw.get("PromptTokens")
    completion = raw.get("CompletionTokens")
    total = raw.get("TotalTokens")
    p = prompt if isinstance(prompt, int) else 0
    c = completion if isinstance(completion, int) else 0
    t = total if isinstance(total, int) and total else p + c
    return Usage(prompt_tokens=p, completion_tokens=c, total_tokens=t)


def _finish(raw: Any) -> str:
    return _FINISH.get(raw, "stop") if isinstance(raw, str) else "stop"


def _tool_calls(raw: Any, stream: bool) -> list[dict[str, Any]] | None:
    if not isinstance(raw, list) or not raw:
        return None
    out: list[dict[str, Any]] = []
    for i, call in enumerate(raw):
        if not isinstance(call, dict):
            continue
        fn = _obj(call.get("Function"))
        item: dict[str, Any] = {
            "id": call.get("Id") or f"call_{i}",
            "type": "function",
            "function": {"name": fn.get("Name") or "", "arguments": fn.get("Arguments") or ""},
        }
        if stream:
            index = call.get("Index")
            item = {"index": index if isinstance(index, int) else i, **item}
        out.append(item)
    return out


# ---------------------------------------------------------------- request conversion


def _content(msg: dict[str, Any], out: dict[str, Any], param: str) -> None:
    content = msg.get("content")
    if content is None or isinstance(content, str):
        out["Content"] = content or ""
        return
    if not isinstance(content, list):
        raise InvalidRequest("Message content must be a string or an array of parts.", param=param)
    if all(isinstance(p, dict) and p.get("type") == "text" for p in content):
        out["Content"] = "".join(str(p.get("text") or "") for p in content)
        return
    parts: list[dict[str, Any]] = []
    for j, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            parts.append({"Type": "text", "Text": str(part.get("text") or "")})
        elif kind == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else image
            if not isinstance(url, str):
                raise InvalidRequest("An image part needs a URL.", param=f"{param}[{j}]")
            parts.append({"Type": "image_url", "ImageUrl": {"Url": url}})
        else:
            raise InvalidRequest(f"Unsupported content part {kind!r}.", param=f"{param}[{j}]")
    out["Contents"] = parts


def _messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    system: list[str] = []
    out: list[dict[str, Any]] = []
    for i, msg in enumerate(messages):
        role = msg.get("role")
        param = f"messages[{i}].content"
        if role in ("system", "developer"):
            holder: dict[str, Any] = {}
            _content(msg, holder, param)
            if "Contents" in holder:
                raise InvalidRequest("A system message takes text only.", param=param)
            system.append(holder["Content"])
            continue
        if role not in ("user", "assistant", "tool"):
            raise InvalidRequest(
                f"Hunyuan does not accept role {role!r}.", param=f"messages[{i}].role"
            )
        new: dict[str, Any] = {"Role": role}
        _content(msg, new, param)
        if role == "assistant" and msg.get("tool_calls"):
            calls = msg["tool_calls"]
            if not isinstance(calls, list):
                raise InvalidRequest(
                    "`tool_calls` must be an array.", param=f"messages[{i}].tool_calls"
                )
            new["ToolCalls"] = [
                {
                    "Id": c.get("id"),
                    "Type": "function",
                    "Function": {
                        "Name": (c.get("function") or {}).get("name"),
                        "Arguments": (c.get("function") or {}).get("arguments") or "{}",
                    },
                }
                for c in calls
                if isinstance(c, dict)
            ]
        elif role == "tool":
            new["ToolCallId"] = msg.get("tool_call_id") or ""
        out.append(new)
    if system:
        out.insert(0, {"Role": "system", "Content": "\n\n".join(system)})
    return out


def _tools(body: dict[str, Any], out: dict[str, Any]) -> None:
    tools = body.get("tools")
    choice = body.get("tool_choice")
    if not tools:
        return
    if not isinstance(tools, list):
        raise InvalidRequest("`tools` must be an array.", param="tools")
    converted: list[dict[str, Any]] = []
    for i, tool in enumerate(tools):
        fn = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise InvalidRequest("Each tool must be a function with a name.", param=f"tools[{i}]")
        params = fn.get("parameters") or {"type": "object", "properties": {}}
        converted.append(
            {
                "Type": "function",
                "Function": {
                    "Name": fn["name"],
                    "Description": fn.get("description") or "",
                    "Parameters": orjson.dumps(params).decode(),  # a JSON string
                },
            }
        )
    out["Tools"] = converted
    named: str | None = None
    if isinstance(choice, dict):
        fn = choice.get("function")
        named = fn.get("name") if isinstance(fn, dict) else None
    elif choice == "required" and len(converted) == 1:
        named = converted[0]["Function"]["Name"]
    if isinstance(named, str):
        tool = next((t for t in converted if t["Function"]["Name"] == named), None)
        if tool is None:
            raise InvalidRequest(
                f"`tool_choice` names an unknown tool {named!r}.", param="tool_choice"
            )
        out["ToolChoice"] = "custom"
        out["CustomTool"] = tool
    elif choice in ("none", "auto"):
        out["ToolChoice"] = choice


def build_chat_body(
    target: Target, body: dict[str, Any], stream: bool
) -> tuple[dict[str, Any], bool]:
    body, legacy = upgrade_legacy_functions(body)
    out: dict[str, Any] = {
        "Model": target.upstream_model,
        "Messages": _messages(require_messages(body)),
        "Stream": stream,
    }
    for src, dst in (("temperature", "Temperature"), ("top_p", "TopP")):
        value = body.get(src)
        if value is not None:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise InvalidRequest(f"`{src}` must be a number.", param=src)
            out[dst] = value
    enhance = body.get("enable_enhancement", target.config.get("enable_enhancement", False))
    out["EnableEnhancement"] = enhance is True
    _tools(body, out)
    return out, legacy


# ---------------------------------------------------------------- adaptor


class TencentAdaptor:
    name = "tencent"

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock

    def _request(self, target: Target, action: str, payload: dict[str, Any]) -> UpstreamRequest:
        secret_id, secret_key = credentials(target.api_key)
        body = orjson.dumps(payload)
        host = _host(target.base_url)
        ts = int(self._clock())
        headers = {
            "Host": host,
            "Content-Type": "application/json",
            "X-TC-Action": action,
            "X-TC-Version": VERSION,
            "X-TC-Timestamp": str(ts),
            "Authorization": tc3.authorization(
                secret_id,
                secret_key,
                service=SERVICE,
                host=host,
                action=action,
                body=body,
                timestamp=ts,
            ),
        }
        region = target.config.get("region")
        if isinstance(region, str) and region:
            headers["X-TC-Region"] = region
        return UpstreamRequest(target.base_url.rstrip("/") + "/", headers, body)

    def chat_request(self, target: Target, body: dict[str, Any], stream: bool) -> UpstreamRequest:
        payload, legacy = build_chat_body(target, body, stream)
        ureq = self._request(target, "ChatCompletions", payload)
        ureq.legacy_functions = legacy
        return ureq

    @staticmethod
    def _secrets(target: Target) -> tuple[str, ...]:
        return tuple(p for p in (target.api_key, *target.api_key.split("|")) if p)

    def _unwrap(self, target: Target, raw: bytes) -> dict[str, Any]:
        obj = parse_json_object(raw)
        resp = obj.get("Response")
        if not isinstance(resp, dict):
            raise UpstreamError("The upstream provider returned an unexpected response.")
        if resp.get("Error") is not None:
            raise tencent_error(resp["Error"], self._secrets(target))
        return resp

    def chat_response(
        self, target: Target, raw: bytes, *, legacy_functions: bool = False
    ) -> tuple[dict[str, Any], Usage | None]:
        resp = self._unwrap(target, raw)
        choices: list[dict[str, Any]] = []
        for i, ch in enumerate(resp.get("Choices") or ()):
            if not isinstance(ch, dict):
                continue
            msg = _obj(ch.get("Message"))
            message: dict[str, Any] = {"role": "assistant", "content": msg.get("Content") or ""}
            reasoning = msg.get("ReasoningContent")
            if isinstance(reasoning, str) and reasoning:
                message["reasoning_content"] = reasoning
            calls = _tool_calls(msg.get("ToolCalls"), False)
            if calls:
                message["tool_calls"] = calls
            choice = {
                "index": i,
                "message": message,
                "finish_reason": "tool_calls" if calls else _finish(ch.get("FinishReason")),
                "logprobs": None,
            }
            if legacy_functions:
                to_function_call_message(choice)
            choices.append(choice)
        if not choices:
            raise UpstreamError("The upstream provider returned an unexpected response.")
        usage = _usage(resp.get("Usage"))
        created = resp.get("Created")
        out: dict[str, Any] = {
            "id": f"chatcmpl-{resp.get('Id') or resp.get('RequestId') or 'hunyuan'}",
            "object": "chat.completion",
            "created": created if isinstance(created, int) else int(time.time()),
            "model": target.upstream_model,
            "choices": choices,
        }
        if usage is not None:
            out["usage"] = usage.to_openai()
        return out, usage

    def chat_stream(
        self, target: Target, include_usage: bool, *, legacy_functions: bool = False
    ) -> TencentStreamTranslator:
        return TencentStreamTranslator(
            target, include_usage, legacy_functions, self._secrets(target)
        )

    def embeddings_request(self, target: Target, body: dict[str, Any]) -> UpstreamRequest:
        items = body.get("input")
        if isinstance(items, str):
            payload: dict[str, Any] = {"Input": items}
        elif isinstance(items, list) and items and all(isinstance(x, str) for x in items):
            payload = {"InputList": items}
        else:
            raise InvalidRequest(
                "Hunyuan embeddings take `input` as a string or an array of strings.", param="input"
            )
        return self._request(target, "GetEmbedding", payload)

    def embeddings_response(
        self, target: Target, raw: bytes
    ) -> tuple[dict[str, Any], Usage | None]:
        resp = self._unwrap(target, raw)
        data = resp.get("Data")
        if not isinstance(data, list):
            raise UpstreamError("The upstream provider returned an unexpected response.")
        items: list[dict[str, Any]] = [
            {
                "object": "embedding",
                "index": d.get("Index", i) if isinstance(d, dict) else i,
                "embedding": d.get("Embedding") if isinstance(d, dict) else [],
            }
            for i, d in enumerate(data)
        ]
        usage = _usage(resp.get("Usage"))
        out: dict[str, Any] = {"object": "list", "data": items, "model": target.upstream_model}
        if usage is not None:
            out["usage"] = {
                "prompt_tokens": usage.prompt_tokens,
                "total_tokens": usage.total_tokens,
            }
        return out, usage

    def error(self, target: Target, status: int, raw: bytes) -> RelayError:
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError:
            obj = None
        resp = obj.get("Response") if isinstance(obj, dict) else None
        if isinstance(resp, dict) and isinstance(resp.get("Error"), dict):
            return tencent_error(resp["Error"], self._secrets(target))
        return error_from_status(status, "", upstream_code=None, secrets=self._secrets(target))


class TencentStreamTranslator:
    """Hunyuan SSE (``data: {"Choices":[{"Delta":…,"FinishReason":""}],"Usage":…}``) →
    OpenAI chunk payloads; a non-empty ``FinishReason`` ends the stream (``done``);
    an ``Error`` (wrapped in ``Response`` or not) or an ``ErrorMsg`` sets ``error``."""

    __slots__ = (
        "_created",
        "_id",
        "_include_usage",
        "_legacy",
        "_model",
        "_prefix",
        "_secrets",
        "_started",
        "done",
        "error",
        "usage",
    )

    def __init__(
        self, target: Target, include_usage: bool, legacy: bool, secrets: tuple[str, ...]
    ) -> None:
        self.usage: Usage | None = None
        self.error: RelayError | None = None
        self.done = False
        self._include_usage = include_usage
        self._legacy = legacy
        self._model = target.upstream_model
        self._secrets = secrets
        self._id = "chatcmpl-hunyuan"
        self._created = 0
        self._prefix: bytes | None = None
        self._started = False

    def _chunk(self, delta: dict[str, Any], finish: str | None) -> bytes:
        prefix = self._prefix
        if prefix is None:
            prefix = self._prefix = (
                b'{"id":'
                + orjson.dumps(self._id)
                + b',"object":"chat.completion.chunk","created":'
                + str(self._created).encode()
                + b',"model":'
                + orjson.dumps(self._model)
                + b',"choices":[{"index":0,"delta":'
            )
        tail = (
            b',"finish_reason":null}]}'
            if finish is None
            else b',"finish_reason":"%s"}]}' % finish.encode()
        )
        return prefix + orjson.dumps(delta) + tail

    def feed(self, event: str | None, data: bytes) -> list[bytes]:
        if self.done:
            return []
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError:
            self.error = UpstreamError("The upstream provider sent a malformed stream event.")
            return []
        if not isinstance(obj, dict):
            return []
        wrapped = obj.get("Response")
        if isinstance(wrapped, dict):
            obj = wrapped
        if obj.get("Error") is not None:
            self.error = tencent_error(obj["Error"], self._secrets)
            return []
        bad = obj.get("ErrorMsg")
        if isinstance(bad, dict) and bad.get("Code"):
            self.error = UpstreamError(
                f"The upstream provider failed (Hunyuan error {bad.get('Code')})."
            )
            return []
        first = not self._started
        if first:
            self._started = True
            rid = obj.get("Id")
            if isinstance(rid, str) and rid:
                self._id = f"chatcmpl-{rid}"
            created = obj.get("Created")
            self._created = created if isinstance(created, int) else int(time.time())
        usage = _usage(obj.get("Usage"))
        if usage is not None and (usage.total_tokens or self.usage is None):
            self.usage = usage
        choices = obj.get("Choices")
        choice = (
            choices[0]
            if isinstance(choices, list) and choices and isinstance(choices[0], dict)
            else {}
        )
        src = _obj(choice.get("Delta"))
        delta: dict[str, Any] = {}
        if first:
            delta["role"] = "assistant"
        reasoning = src.get("ReasoningContent")
        if isinstance(reasoning, str) and reasoning:
            delta["reasoning_content"] = reasoning
        content = src.get("Content")
        if isinstance(content, str) and content:
            delta["content"] = content
        calls = _tool_calls(src.get("ToolCalls"), True)
        if calls:
            if self._legacy:
                call = next((c for c in calls if c["index"] == 0), None)
                if call is not None:
                    delta["function_call"] = call["function"]
            else:
                delta["tool_calls"] = calls
        finish = None
        reason = choice.get("FinishReason")
        if isinstance(reason, str) and reason:
            self.done = True
            finish = _finish(reason)
            if self._legacy and finish == "tool_calls":
                finish = "function_call"
        if not delta and finish is None:
            return []
        return [self._chunk(delta, finish)]

    def finish(self) -> list[bytes]:
        if self._include_usage and self.usage is not None:
            return [usage_chunk(self._id, self._model, self._created, self.usage)]
        return []
