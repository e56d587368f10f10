"""iFlytek Spark over WebSocket, the legacy native protocol (spec ``providers.md`` §8a).
No I/O of its own: ``chat_request`` returns the HMAC-signed ``wss://`` URL and the one
request frame; ``transport/websocket.py`` connects, sends the frame and hands the
answer frames back (a stream: one SSE event per frame; ``read()``: the frames joined by
``\\n``), which this adaptor turns into OpenAI objects and chunks.

Channel: key ``APPID|APISecret|APIKey``; base URL ``wss://spark-api.xf-yun.com`` (an
``https://``/``http://`` base URL is taken as ``wss://``/``ws://``, so a base URL the
channel validation accepts works). ``config`` keys:

* ``domains``: ``{model: [path, domain]}``, overriding the built-in table :data:`DOMAINS`;
  a model in neither goes to ``config.path`` (default ``/v3.5/chat``) with the model
  name as the ``domain``;
* ``system_role``: whether the model takes ``role: "system"`` messages (default: true for
  the ``generalv3.5``, ``max-32k`` and ``4.0Ultra`` domains, folded into the first user
  message for the others).

Conversions (documented choices):

* system/developer messages → one ``system`` text first, or folded (above);
* content parts → their text joined (images are refused: the chat API is text only);
* ``tools`` (and legacy ``functions``) → ``payload.functions.text``; ``tool_choice:
  "none"`` sends no functions; an assistant's ``tool_calls`` and ``role: "tool"`` results
  have no place in Spark's history, so they are folded into text the model can read —
  ``[function call] name(arguments)`` on the assistant turn and ``[function result]
  name: content`` as a user turn — and consecutive turns of one role are merged;
* ``temperature`` is clamped into Spark's (0, 1]; ``max_tokens`` (or
  ``max_completion_tokens``) and ``top_k`` are passed on; ``user`` becomes ``header.uid``.

Answers: ``header.code != 0`` is an error (:func:`spark_error`); the content-moderation
codes 10013/10014/10019 end the answer with ``finish_reason: "content_filter"`` (what
OpenAI does for filtered output, and what the Anthropic adaptor does with a refusal)
instead of an error: the text received so far is kept. ``header.status == 2`` is the last
frame; its ``payload.usage.text`` is the usage. A ``function_call`` becomes one tool call
(``finish_reason: "tool_calls"``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Callable
from email.utils import formatdate
from typing import Any
from urllib.parse import urlencode, urlsplit

import orjson

from relaygate.errors import (
    InvalidRequest,
    NotImplementedByProvider,
    RelayError,
    UpstreamError,
    sanitize,
)
from relaygate.providers.base import (
    Target,
    UpstreamRequest,
    Usage,
    error_from_status,
    require_messages,
    usage_chunk,
)
from relaygate.providers.legacy_functions import (
    LegacyStream,
    to_function_call_message,
    upgrade_legacy_functions,
)

__all__ = [
    "DEFAULT_BASE_URL",
    "DOMAINS",
    "SparkWSAdaptor",
    "SparkWSStream",
    "sign_url",
    "spark_error",
]

DEFAULT_BASE_URL = "wss://spark-api.xf-yun.com"
#: model → (path, domain) (one-api ``xunfei/domain.go``)
DOMAINS: dict[str, tuple[str, str]] = {
    "lite": ("/v1.1/chat", "lite"),
    "generalv3": ("/v3.1/chat", "generalv3"),
    "pro-128k": ("/chat/pro-128k", "pro-128k"),
    "generalv3.5": ("/v3.5/chat", "generalv3.5"),
    "max-32k": ("/chat/max-32k", "max-32k"),
    "4.0Ultra": ("/v4.0/chat", "4.0Ultra"),
}
DEFAULT_PATH = "/v3.5/chat"
#: domains that take ``role: "system"`` (Max, Max-32K, 4.0 Ultra)
SYSTEM_DOMAINS = frozenset({"generalv3.5", "max-32k", "4.0Ultra"})
#: ``header.code`` values that mean content moderation
MODERATION = frozenset({10013, 10014, 10019})
_AUTH = frozenset({11200, 10313})  # 10313: the app id does not match the key
_RATE = frozenset({11201, 11202, 11203})  # daily quota, QPS, concurrency
_REJECTED = frozenset({10163, 10907})  # parameter check, input too long
_SCHEMES = {"https": "wss", "http": "ws", "wss": "wss", "ws": "ws"}
_NO_EMBEDDINGS = "iFlytek Spark (WebSocket) has no embeddings API."


# ------------------------------------------------------------------ credentials, URL


def _credentials(target: Target) -> tuple[str, str, str]:
    parts = target.api_key.split("|")
    if len(parts) != 3 or not all(p.strip() for p in parts):
        raise UpstreamError(
            "This Spark channel's key must be APPID|APISecret|APIKey; "
            "the operator has to fix the channel.",
            code="upstream_auth_failed",
        )
    app_id, secret, key = (p.strip() for p in parts)
    return app_id, secret, key


def sign_url(base_url: str, path: str, api_key: str, api_secret: str, now: float) -> str:
    """The signed URL of the documented HMAC-SHA256 scheme: ``date`` in RFC 1123 GMT,
    ``signature_origin = "host: {host}\\ndate: {date}\\nGET {path} HTTP/1.1"``, the
    base64 HMAC of it under ``api_secret``, and ``authorization`` the base64 of
    ``api_key="…", algorithm="hmac-sha256", headers="host date request-line",
    signature="…"``; the three go in the query string."""
    parts = urlsplit(base_url)
    scheme = _SCHEMES.get(parts.scheme.lower(), "wss")
    host = parts.netloc.rpartition("@")[2]
    full_path = parts.path.rstrip("/") + path
    date = formatdate(now, usegmt=True)
    origin = f"host: {host}\ndate: {date}\nGET {full_path} HTTP/1.1"
    digest = hmac.new(api_secret.encode(), origin.encode(), hashlib.sha256).digest()
    signature = base64.b64encode(digest).decode("ascii")
    authorization_origin = (
        f'api_key="{api_key}", algorithm="hmac-sha256", '
        f'headers="host date request-line", signature="{signature}"'
    )
    authorization = base64.b64encode(authorization_origin.encode()).decode("ascii")
    query = urlencode({"authorization": authorization, "date": date, "host": host})
    return f"{scheme}://{host}{full_path}?{query}"


def _route(target: Target) -> tuple[str, str]:
    model = target.upstream_model
    domains = target.config.get("domains")
    if isinstance(domains, dict):
        entry = domains.get(model)
        if isinstance(entry, list | tuple) and len(entry) == 2:
            path, domain = entry
            if isinstance(path, str) and isinstance(domain, str):
                return path if path.startswith("/") else "/" + path, domain
    known = DOMAINS.get(model)
    if known is not None:
        return known
    path = target.config.get("path")
    return (path if isinstance(path, str) and path.startswith("/") else DEFAULT_PATH), model


# ------------------------------------------------------------------ request frame


def _text(content: Any, i: int) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        out: list[str] = []
        for part in content:
            if not isinstance(part, dict):
                continue
            kind = part.get("type")
            if kind == "text" and isinstance(part.get("text"), str):
                out.append(part["text"])
            elif kind in ("image_url", "input_audio", "file", "image"):
                raise InvalidRequest(
                    "iFlytek Spark (WebSocket) takes text only.",
                    param=f"messages[{i}].content",
                )
        return "".join(out)
    raise InvalidRequest(
        f"`messages[{i}].content` must be a string or an array of parts.",
        param=f"messages[{i}].content",
    )


def _messages(messages: list[dict[str, Any]], system_role: bool) -> list[dict[str, str]]:
    system: list[str] = []
    turns: list[dict[str, str]] = []
    names: dict[str, str] = {}  # tool call id -> function name

    def add(role: str, text: str) -> None:
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"] += "\n\n" + text
        else:
            turns.append({"role": role, "content": text})

    for i, msg in enumerate(messages):
        role = msg.get("role")
        if role in ("system", "developer"):
            system.append(_text(msg.get("content"), i))
        elif role == "user":
            add("user", _text(msg.get("content"), i))
        elif role == "assistant":
            text = _text(msg.get("content"), i)
            calls = msg.get("tool_calls")
            lines = [text] if text else []
            for call in calls if isinstance(calls, list) else ():
                fn = call.get("function") if isinstance(call, dict) else None
                if not isinstance(fn, dict):
                    continue
                name = str(fn.get("name") or "")
                if isinstance(call.get("id"), str):
                    names[call["id"]] = name
                lines.append(f"[function call] {name}({fn.get('arguments') or '{}'})")
            add("assistant", "\n".join(lines))
        elif role == "tool":
            name = names.get(str(msg.get("tool_call_id")), "") or str(msg.get("name") or "")
            add("user", f"[function result] {name}: {_text(msg.get('content'), i)}")
        else:
            raise InvalidRequest(
                f"`messages[{i}].role` {role!r} is not supported.", param=f"messages[{i}].role"
            )
    if system:
        prompt = "\n\n".join(s for s in system if s)
        if system_role:
            turns.insert(0, {"role": "system", "content": prompt})
        elif turns and turns[0]["role"] == "user":
            turns[0]["content"] = prompt + "\n\n" + turns[0]["content"]
        else:
            turns.insert(0, {"role": "user", "content": prompt})
    return turns


def _functions(body: dict[str, Any]) -> list[dict[str, Any]]:
    tools = body.get("tools")
    if not isinstance(tools, list) or body.get("tool_choice") == "none":
        return []
    out: list[dict[str, Any]] = []
    for i, tool in enumerate(tools):
        fn = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise InvalidRequest(
                f"`tools[{i}]` must be a function tool with a name.", param=f"tools[{i}]"
            )
        entry: dict[str, Any] = {"name": fn["name"], "description": fn.get("description") or ""}
        params = fn.get("parameters")
        entry["parameters"] = params if isinstance(params, dict) else {"type": "object"}
        out.append(entry)
    return out


def _number(body: dict[str, Any], key: str) -> float | int | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidRequest(f"`{key}` must be a number.", param=key)
    return value


def build_frame(target: Target, body: dict[str, Any], domain: str, app_id: str) -> bytes:
    messages = require_messages(body)
    system_role = target.config.get("system_role")
    if not isinstance(system_role, bool):
        system_role = domain in SYSTEM_DOMAINS
    chat: dict[str, Any] = {"domain": domain}
    temperature = _number(body, "temperature")
    if temperature is not None:
        chat["temperature"] = min(max(float(temperature), 0.01), 1.0)
    max_tokens = _number(body, "max_tokens")
    if max_tokens is None:
        max_tokens = _number(body, "max_completion_tokens")
    if max_tokens is not None:
        chat["max_tokens"] = int(max_tokens)
    top_k = _number(body, "top_k")
    if top_k is not None:
        chat["top_k"] = int(top_k)
    user = body.get("user")
    uid = user[:32] if isinstance(user, str) and user else "relaygate"
    payload: dict[str, Any] = {"message": {"text": _messages(messages, system_role)}}
    functions = _functions(body)
    if functions:
        payload["functions"] = {"text": functions}
    return orjson.dumps(
        {
            "header": {"app_id": app_id, "uid": uid},
            "parameter": {"chat": chat},
            "payload": payload,
        }
    )


# ------------------------------------------------------------------ errors


def spark_error(code: int, message: str, secrets: tuple[str, ...]) -> RelayError:
    """A ``header.code`` other than 0 (and not content moderation) → the error table:
    11200/10313 (authorisation) → 502 ``upstream_auth_failed``; 11201/11202/11203 (daily
    quota, QPS, concurrency) → 429; 10163/10907 (parameters, too long) → 400 passed on;
    anything else → 502. ``upstream_status`` is set to the mapped status, so the attempt
    loop treats it like the same HTTP answer (a 429 is retried on another channel)."""
    text = f"Spark error {code}: {message}" if message else f"Spark error {code}"
    if code in _AUTH:
        status = 401
    elif code in _RATE:
        status = 429
    elif code in _REJECTED:
        status = 400
    else:
        status = 500
    err: RelayError
    if status == 500:
        err = UpstreamError(f"The upstream provider failed ({sanitize(text, secrets)}).")
    else:
        err = error_from_status(status, text, upstream_code=str(code), secrets=secrets)
    err.upstream_status = status
    return err


# ------------------------------------------------------------------ answer frames


class _Frame:
    """What one answer frame says (parsed once)."""

    __slots__ = ("code", "content", "function", "last", "message", "sid", "usage")

    def __init__(self, raw: bytes) -> None:
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise UpstreamError("The upstream provider sent a malformed frame.") from None
        header = obj.get("header") if isinstance(obj, dict) else None
        if not isinstance(header, dict):
            raise UpstreamError("The upstream provider sent an unexpected frame.")
        code = header.get("code")
        self.code = code if isinstance(code, int) and not isinstance(code, bool) else 0
        self.message = str(header.get("message") or "")
        sid = header.get("sid")
        self.sid = sid if isinstance(sid, str) else ""
        self.last = header.get("status") == 2
        self.content = ""
        self.function: dict[str, Any] | None = None
        self.usage: Usage | None = None
        payload = obj.get("payload")
        if not isinstance(payload, dict):
            return
        choices = payload.get("choices")
        texts = choices.get("text") if isinstance(choices, dict) else None
        for item in texts if isinstance(texts, list) else ():
            if not isinstance(item, dict):
                continue
            content = item.get("content")
            if isinstance(content, str):
                self.content += content
            fn = item.get("function_call")
            if isinstance(fn, dict) and isinstance(fn.get("name"), str):
                self.function = fn
        usage = payload.get("usage")
        counts = usage.get("text") if isinstance(usage, dict) else None
        if isinstance(counts, dict):
            self.usage = Usage.from_openai(
                {
                    "prompt_tokens": counts.get("prompt_tokens"),
                    "completion_tokens": counts.get("completion_tokens"),
                    "total_tokens": counts.get("total_tokens"),
                }
            )


def _tool_call(fn: dict[str, Any], sid: str) -> dict[str, Any]:
    arguments = fn.get("arguments")
    if not isinstance(arguments, str):
        arguments = orjson.dumps(arguments or {}).decode()
    return {
        "id": "call_" + (sid or "spark"),
        "type": "function",
        "function": {"name": fn["name"], "arguments": arguments},
    }


class SparkWSStream:
    """One Spark answer (one frame per SSE event) → OpenAI chunk payloads."""

    __slots__ = (
        "_created",
        "_id",
        "_include_usage",
        "_legacy",
        "_model",
        "_prefix",
        "_role_sent",
        "_secrets",
        "done",
        "error",
        "usage",
    )

    def __init__(self, target: Target, include_usage: bool, legacy: bool = False) -> None:
        self.usage: Usage | None = None
        self.error: RelayError | None = None
        self.done = False
        self._include_usage = include_usage
        self._legacy = LegacyStream() if legacy else None
        self._secrets = _secrets(target)
        self._model = target.upstream_model
        self._created = int(time.time())
        self._id = "chatcmpl-spark"
        self._prefix: bytes | None = None
        self._role_sent = False

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> bytes:
        if self._legacy is not None:
            choice: dict[str, Any] = {"index": 0, "delta": delta, "finish_reason": finish}
            self._legacy.choice(choice)
            delta, finish = choice["delta"], choice["finish_reason"]
        prefix = self._prefix
        if prefix is None:
            prefix = self._prefix = b"".join(
                (
                    b'{"id":',
                    orjson.dumps(self._id),
                    b',"object":"chat.completion.chunk","created":',
                    str(self._created).encode(),
                    b',"model":',
                    orjson.dumps(self._model),
                    b',"choices":[{"index":0,"delta":',
                )
            )
        tail = (
            b',"finish_reason":null}]}'
            if finish is None
            else b',"finish_reason":"%s"}]}' % (finish.encode())
        )
        return prefix + orjson.dumps(delta) + tail

    def feed(self, event: str | None, data: bytes) -> list[bytes]:
        if self.done or not data.strip():
            return []
        try:
            frame = _Frame(data)
        except UpstreamError as err:
            self.error = err
            return []
        if frame.sid and not self._role_sent:
            self._id = "chatcmpl-" + frame.sid
            self._prefix = None
        out: list[bytes] = []
        if frame.code and frame.code not in MODERATION:
            self.error = spark_error(frame.code, frame.message, self._secrets)
            return out
        delta: dict[str, Any] = {}
        if not self._role_sent:
            delta["role"] = "assistant"
            self._role_sent = True
        if frame.content:
            delta["content"] = frame.content
        elif "role" in delta:
            delta["content"] = ""
        if frame.function is not None:
            call = _tool_call(frame.function, frame.sid)
            delta["tool_calls"] = [{"index": 0, **call}]
        if delta:
            out.append(self._chunk(delta))
        if frame.code:  # content moderation: the answer ends here
            out.append(self._chunk({}, "content_filter"))
            self.done = True
        elif frame.last:
            if frame.usage is not None:
                self.usage = frame.usage
            out.append(self._chunk({}, "tool_calls" if frame.function is not None else "stop"))
            self.done = True
        return out

    def finish(self) -> list[bytes]:
        if self._include_usage and self.usage is not None:
            return [usage_chunk(self._id, self._model, self._created, self.usage)]
        return []


# ------------------------------------------------------------------ adaptor


class SparkWSAdaptor:
    """iFlytek Spark over WebSocket. ``clock`` (seconds since the epoch) signs the URL:
    a seam for deterministic tests."""

    name = "spark_ws"

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock

    def chat_request(self, target: Target, body: dict[str, Any], stream: bool) -> UpstreamRequest:
        app_id, secret, key = _credentials(target)
        body, legacy = upgrade_legacy_functions(body)
        path, domain = _route(target)
        frame = build_frame(target, body, domain, app_id)
        url = sign_url(target.base_url or DEFAULT_BASE_URL, path, key, secret, self._clock())
        return UpstreamRequest(
            url=url, headers={}, body=frame, method="GET", legacy_functions=legacy
        )

    def chat_response(
        self, target: Target, raw: bytes, *, legacy_functions: bool = False
    ) -> tuple[dict[str, Any], Usage | None]:
        secrets = _secrets(target)
        texts: list[str] = []
        sid = ""
        function: dict[str, Any] | None = None
        usage: Usage | None = None
        finish: str | None = None
        for line in raw.split(b"\n"):
            if not line.strip():
                continue
            frame = _Frame(line)
            sid = sid or frame.sid
            if frame.code and frame.code not in MODERATION:
                raise spark_error(frame.code, frame.message, secrets)
            texts.append(frame.content)
            if frame.function is not None:
                function = frame.function
            if frame.code:
                finish = "content_filter"
                break
            if frame.last:
                usage = frame.usage
                finish = "tool_calls" if function is not None else "stop"
                break
        if finish is None:
            raise UpstreamError("The upstream provider's answer ended before it was complete.")
        message: dict[str, Any] = {"role": "assistant", "content": "".join(texts)}
        if function is not None:
            message["tool_calls"] = [_tool_call(function, sid)]
            if not message["content"]:
                message["content"] = None
        result: dict[str, Any] = {
            "id": "chatcmpl-" + (sid or "spark"),
            "object": "chat.completion",
            "created": int(time.time()),
            "model": target.upstream_model,
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        }
        if usage is not None:
            result["usage"] = usage.to_openai()
        if legacy_functions:
            to_function_call_message(result["choices"][0])
        return result, usage

    def chat_stream(
        self, target: Target, include_usage: bool, *, legacy_functions: bool = False
    ) -> SparkWSStream:
        return SparkWSStream(target, include_usage, legacy_functions)

    def embeddings_request(self, target: Target, body: dict[str, Any]) -> UpstreamRequest:
        raise NotImplementedByProvider(_NO_EMBEDDINGS)

    def embeddings_response(
        self, target: Target, raw: bytes
    ) -> tuple[dict[str, Any], Usage | None]:
        raise NotImplementedByProvider(_NO_EMBEDDINGS)

    def error(self, target: Target, status: int, raw: bytes) -> RelayError:
        """A refused WebSocket upgrade (401 bad signature, 403 stale date, …) or a non-2xx
        answer: Spark's gateway answers ``{"message": "…"}``."""
        message = ""
        stripped = raw.strip()
        if stripped.startswith(b"{"):
            try:
                obj = orjson.loads(stripped)
            except orjson.JSONDecodeError:
                obj = None
            if isinstance(obj, dict):
                message = str(obj.get("message") or "")
        elif stripped and not stripped.startswith(b"<"):
            message = stripped[:300].decode("utf-8", "replace")
        return error_from_status(status, message, upstream_code=None, secrets=_secrets(target))


def _secrets(target: Target) -> tuple[str, ...]:
    """The channel key and its parts (never shown in messages)."""
    return (target.api_key, *(p for p in target.api_key.split("|") if len(p) >= 6))
