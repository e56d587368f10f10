"""Tencent Hunyuan: the request side — the channel key, the PascalCase chat body
(messages merged into alternating turns, content parts, tools and ``ToolChoice``,
sampling, ``Seed``) and the signed TencentCloud API 3.0 request (headers; the
signature itself is ``providers/tc3.py``).
Pure functions; the adaptor is ``providers/tencent.py``."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import orjson

from relaygate.errors import InvalidRequest, UpstreamError
from relaygate.providers import tc3
from relaygate.providers.base import (
    Target,
    UpstreamRequest,
    join_texts,
    number_field,
    require_messages,
)
from relaygate.providers.legacy_functions import upgrade_legacy_functions

__all__ = [
    "SERVICE",
    "VERSION",
    "build_chat_body",
    "credentials",
    "embeddings_payload",
    "signed_request",
]

SERVICE = "hunyuan"
VERSION = "2023-09-01"
#: the largest ``Seed`` Hunyuan takes (Tencent's SDK: "non-zero positive integer, max 10000")
SEED_MAX = 10000


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


def signed_request(
    target: Target, action: str, payload: dict[str, Any], timestamp: int
) -> UpstreamRequest:
    """``POST {base_url}/`` of ``payload`` as ``action``, signed at ``timestamp``."""
    secret_id, secret_key = credentials(target.api_key)
    body = orjson.dumps(payload)
    host = _host(target.base_url)
    headers = {
        "Host": host,
        "Content-Type": "application/json",
        "X-TC-Action": action,
        "X-TC-Version": VERSION,
        "X-TC-Timestamp": str(timestamp),
        "Authorization": tc3.authorization(
            secret_id,
            secret_key,
            service=SERVICE,
            host=host,
            action=action,
            body=body,
            timestamp=timestamp,
        ),
    }
    region = target.config.get("region")
    if isinstance(region, str) and region:
        headers["X-TC-Region"] = region
    return UpstreamRequest(target.base_url.rstrip("/") + "/", headers, body)


# ---------------------------------------------------------------- chat body


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


def _tool_call(call: Any, param: str) -> dict[str, Any]:
    """An assistant's earlier tool call as Hunyuan's ``ToolCalls`` item."""
    fn = call.get("function") if isinstance(call, dict) else None
    if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
        raise InvalidRequest(
            f"`{param}` must be an object with a `function` that has a `name`.", param=param
        )
    return {
        "Id": call.get("id"),
        "Type": "function",
        "Function": {"Name": fn["name"], "Arguments": fn.get("arguments") or "{}"},
    }


def _parts(msg: dict[str, Any]) -> list[dict[str, Any]]:
    """A message's content as ``Contents`` parts (a plain ``Content`` becomes one text part)."""
    if "Contents" in msg:
        parts: list[dict[str, Any]] = msg["Contents"]
        return parts
    text = msg.get("Content") or ""
    return [{"Type": "text", "Text": text}] if text else []


def _merge(prev: dict[str, Any], new: dict[str, Any]) -> None:
    """``new`` (same role as ``prev``, a user turn or an assistant turn) folded into ``prev``:
    texts joined by a blank line, image parts kept in order, ``new``'s tool calls kept."""
    if "Contents" in prev or "Contents" in new:
        prev["Contents"] = _parts(prev) + _parts(new)
        prev.pop("Content", None)
    else:
        prev["Content"] = join_texts(prev["Content"], new["Content"])
    if "ToolCalls" in new:
        prev["ToolCalls"] = new["ToolCalls"]


def _alternation(turns: list[dict[str, Any]], sources: list[int]) -> None:
    """Hunyuan's order: user (or tool) and assistant alternate, starting with the user and
    ending with the user or a tool result; tool results may follow one another."""
    if not turns:
        raise InvalidRequest("Hunyuan needs at least one user message.", param="messages")
    problem = None
    for j, msg in enumerate(turns):
        role, prev = msg["Role"], turns[j - 1]["Role"] if j else None
        if j == 0 and role != "user":
            problem = "the conversation must start with the user"
        elif role == "assistant" and prev == "assistant":
            problem = "two assistant turns with tool calls follow one another"
        elif role == "tool" and prev not in ("assistant", "tool"):
            problem = "a tool result must follow the assistant's tool call"
        elif j == len(turns) - 1 and role == "assistant":
            problem = "the last message must be the user's or a tool result"
        if problem is not None:
            raise InvalidRequest(
                "Hunyuan needs user (or tool) and assistant turns to alternate, starting with "
                f"the user and ending with the user or a tool result; turn {j + 1} ({role}, "
                f"messages[{sources[j]}]) breaks that: {problem}.",
                param="messages",
            )


def _messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Hunyuan's ``Messages``: system and developer texts as one system message first;
    consecutive user messages, and consecutive assistant messages (unless both carry tool
    calls), merged into one turn; tool results never merged; the order checked
    (:func:`_alternation`)."""
    system: list[str] = []
    out: list[dict[str, Any]] = []
    sources: list[int] = []  # out[j] starts at messages[sources[j]]
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
                _tool_call(c, f"messages[{i}].tool_calls[{j}]") for j, c in enumerate(calls)
            ]
        elif role == "tool":
            new["ToolCallId"] = msg.get("tool_call_id") or ""
        prev = out[-1] if out else None
        if (
            prev is not None
            and role != "tool"
            and prev["Role"] == role
            and not ("ToolCalls" in prev and "ToolCalls" in new)
        ):
            _merge(prev, new)
            continue
        out.append(new)
        sources.append(i)
    _alternation(out, sources)
    joined = join_texts(*system)
    if joined:
        out.insert(0, {"Role": "system", "Content": joined})
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
    """``(ChatCompletions body, whether the client used the legacy functions fields)``."""
    body, legacy = upgrade_legacy_functions(body)
    out: dict[str, Any] = {
        "Model": target.upstream_model,
        "Messages": _messages(require_messages(body)),
        "Stream": stream,
    }
    for src, dst in (("temperature", "Temperature"), ("top_p", "TopP")):
        value = number_field(body, src)
        if value is not None:
            out[dst] = value
    seed = body.get("seed")
    if seed is not None:
        if isinstance(seed, bool) or not isinstance(seed, int) or not 1 <= seed <= SEED_MAX:
            raise InvalidRequest(
                f"`seed` must be an integer from 1 to {SEED_MAX} for Hunyuan.", param="seed"
            )
        out["Seed"] = seed
    enhance = body.get("enable_enhancement", target.config.get("enable_enhancement", False))
    out["EnableEnhancement"] = enhance is True
    _tools(body, out)
    return out, legacy


def embeddings_payload(body: dict[str, Any]) -> dict[str, Any]:
    """The ``GetEmbedding`` body: ``Input`` (one string) or ``InputList`` (strings)."""
    items = body.get("input")
    if isinstance(items, str):
        return {"Input": items}
    if isinstance(items, list) and items and all(isinstance(x, str) for x in items):
        return {"InputList": items}
    raise InvalidRequest(
        "Hunyuan embeddings take `input` as a string or an array of strings.", param="input"
    )
