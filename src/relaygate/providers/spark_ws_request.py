"""iFlytek Spark over WebSocket: the request side — the channel key, the model's path
and ``domain``, the HMAC-signed ``wss://`` URL and the one request frame (spec
``providers.md`` §8a). Pure functions; the adaptor is ``providers/spark_ws.py``."""

from __future__ import annotations

import base64
import hashlib
import hmac
from email.utils import formatdate
from typing import Any
from urllib.parse import urlencode, urlsplit

import orjson

from relaygate.errors import InvalidRequest, UpstreamError
from relaygate.providers.base import Target, number_field, require_messages

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_PATH",
    "DOMAINS",
    "SYSTEM_DOMAINS",
    "build_frame",
    "credentials",
    "route",
    "sign_url",
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
#: the largest ``max_tokens`` passed on (a 32-bit integer; Spark's own limit per domain is
#: lower and its answer says so); larger values are the client's error, not an encoder's
MAX_TOKENS_LIMIT = 2**31 - 1
#: domains that take ``role: "system"`` (Max, Max-32K, 4.0 Ultra)
SYSTEM_DOMAINS = frozenset({"generalv3.5", "max-32k", "4.0Ultra"})
_SCHEMES = {"https": "wss", "http": "ws", "wss": "wss", "ws": "ws"}


# ------------------------------------------------------------------ credentials, URL


def credentials(target: Target) -> tuple[str, str, str]:
    """``(APPID, APISecret, APIKey)`` from the channel key ``APPID|APISecret|APIKey``."""
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


def route(target: Target) -> tuple[str, str]:
    """``(path, domain)`` of the target's model: ``config.domains``, else :data:`DOMAINS`,
    else ``config.path`` (default :data:`DEFAULT_PATH`) with the model as the domain."""
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


def build_frame(target: Target, body: dict[str, Any], domain: str, app_id: str) -> bytes:
    """The one request frame (``header``, ``parameter.chat``, ``payload``)."""
    messages = require_messages(body)
    system_role = target.config.get("system_role")
    if not isinstance(system_role, bool):
        system_role = domain in SYSTEM_DOMAINS
    chat: dict[str, Any] = {"domain": domain}
    temperature = number_field(body, "temperature")
    if temperature is not None:
        chat["temperature"] = min(max(float(temperature), 0.01), 1.0)
    max_tokens = body.get("max_tokens")
    if max_tokens is None:
        max_tokens = body.get("max_completion_tokens")
    if max_tokens is not None:
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int):
            raise InvalidRequest("`max_tokens` must be a positive integer.", param="max_tokens")
        if not 1 <= max_tokens <= MAX_TOKENS_LIMIT:
            raise InvalidRequest(
                f"`max_tokens` must be an integer from 1 to {MAX_TOKENS_LIMIT}.",
                param="max_tokens",
            )
        chat["max_tokens"] = max_tokens
    top_k = number_field(body, "top_k")
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
