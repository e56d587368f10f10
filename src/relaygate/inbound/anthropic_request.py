"""Anthropic Messages request → OpenAI chat-completions body (pure, no I/O).

The reverse of ``providers/anthropic_request.py``: a client of ``POST /v1/messages`` is
served by any channel through the chat relay. Rules:

* ``system`` (a string or text blocks) becomes the first ``system`` message.
* ``text`` blocks stay text parts; ``image`` blocks (``base64`` or ``url`` source) become
  ``image_url`` parts (base64 as a data URL); a base64 PDF ``document`` becomes a ``file``
  part, a plain-text one a text part.
* An assistant's ``tool_use`` blocks become ``tool_calls`` (``input`` serialised as the
  ``arguments``); a user's ``tool_result`` blocks become ``tool`` messages, put before the
  rest of that user turn (they answer the previous assistant turn).
* ``thinking`` blocks sent back are dropped: only an Anthropic model can read them, and an
  Anthropic channel gets the request as sent anyway (``relay/messages.py``).
* ``tools`` (``input_schema``) become function tools; a server tool (``web_search_…``) is
  passed on as given. ``tool_choice`` auto/any/tool/none → ``auto``/``required``/the
  named function/``none``; ``disable_parallel_tool_use`` → ``parallel_tool_calls: false``.
* ``max_tokens``, ``temperature``, ``top_p``, ``stop_sequences`` (→ ``stop``),
  ``metadata.user_id`` (→ ``user``); ``top_k`` has no chat equivalent and is dropped.
* ``thinking: {type: enabled, budget_tokens}`` → ``reasoning_effort`` (below 4096 ``low``,
  below 16384 ``medium``, else ``high``: the budgets the Anthropic adaptor uses the other
  way).
* A streamed request asks for ``stream_options.include_usage``: the closing
  ``message_delta`` carries the usage.
"""

from __future__ import annotations

from typing import Any

import orjson

from relaygate.errors import InvalidRequest

__all__ = ["effort_for_budget", "to_chat"]

Part = dict[str, Any]


def effort_for_budget(budget: int) -> str:
    """The ``reasoning_effort`` nearest a thinking budget."""
    if budget < 4096:
        return "low"
    if budget < 16384:
        return "medium"
    return "high"


def to_chat(
    body: dict[str, Any], *, count_only: bool = False, dropped: list[str] | None = None
) -> dict[str, Any]:
    """The chat-completions body for an Anthropic Messages ``body``. ``count_only``: for
    ``count_tokens``, where ``max_tokens`` is not sent. A block chat cannot carry (a
    ``server_tool_use``, a document by URL, …) is the client's error, unless ``dropped`` is
    given: it is then left out and named there (an Anthropic channel takes it as sent; the
    caller refuses it for any other)."""
    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        raise InvalidRequest("model: Field required (a string).", param="model")
    out: dict[str, Any] = {"model": model}
    messages: list[dict[str, Any]] = []
    system = body.get("system")
    if system is not None:
        messages.append({"role": "system", "content": _system(system)})
    raw = body.get("messages")
    if not isinstance(raw, list) or not raw:
        raise InvalidRequest("messages: Field required (a non-empty array).", param="messages")
    for i, msg in enumerate(raw):
        messages.extend(_message(msg, i, dropped))
    out["messages"] = messages

    if not count_only:
        max_tokens = body.get("max_tokens")
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
            raise InvalidRequest(
                "max_tokens: Field required (a positive integer).", param="max_tokens"
            )
        out["max_tokens"] = max_tokens
    for key in ("temperature", "top_p"):
        value = body.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidRequest(f"{key}: Input should be a number.", param=key)
        out[key] = value
    stops = body.get("stop_sequences")
    if stops is not None:
        if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
            raise InvalidRequest(
                "stop_sequences: Input should be an array of strings.", param="stop_sequences"
            )
        if stops:
            out["stop"] = stops
    stream = body.get("stream")
    if stream is not None:
        if not isinstance(stream, bool):
            raise InvalidRequest("stream: Input should be a boolean.", param="stream")
        if stream and not count_only:
            out["stream"] = True
            out["stream_options"] = {"include_usage": True}
    _tools(body, out)
    _thinking(body.get("thinking"), out)
    metadata = body.get("metadata")
    if isinstance(metadata, dict) and isinstance(metadata.get("user_id"), str):
        out["user"] = metadata["user_id"]
    return out


# ---------------------------------------------------------------- content


def _system(system: Any) -> str | list[Part]:
    if isinstance(system, str):
        return system
    if not isinstance(system, list):
        raise InvalidRequest("system: Input should be a string or an array of text blocks.")
    parts: list[Part] = []
    for j, block in enumerate(system):
        if not isinstance(block, dict) or block.get("type") != "text":
            raise InvalidRequest(f"system.{j}: Input should be a text block.", param="system")
        parts.append(_text_part(block, f"system.{j}"))
    return parts


def _text_part(block: dict[str, Any], where: str) -> Part:
    text = block.get("text")
    if not isinstance(text, str):
        raise InvalidRequest(f"{where}.text: Field required (a string).", param=where)
    part: Part = {"type": "text", "text": text}
    if isinstance(block.get("cache_control"), dict):
        part["cache_control"] = block["cache_control"]
    return part


def _blocks(content: Any, where: str) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if not isinstance(content, list):
        raise InvalidRequest(
            f"{where}.content: Input should be a string or an array of content blocks.",
            param=where,
        )
    for j, block in enumerate(content):
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            raise InvalidRequest(f"{where}.content.{j}: Input should be a content block.")
    return content


def _message(msg: Any, i: int, dropped: list[str] | None) -> list[dict[str, Any]]:
    where = f"messages.{i}"
    if not isinstance(msg, dict):
        raise InvalidRequest(f"{where}: Input should be an object.", param=where)
    role = msg.get("role")
    if role not in ("user", "assistant"):
        raise InvalidRequest(f"{where}.role: Input should be 'user' or 'assistant'.", param=where)
    blocks = _blocks(msg.get("content"), where)
    if role == "assistant":
        return [_assistant(blocks, where, dropped)]
    out: list[dict[str, Any]] = []
    parts: list[Part] = []
    for j, block in enumerate(blocks):
        kind = block["type"]
        if kind == "tool_result":
            out.append(_tool_result(block, f"{where}.content.{j}", dropped))
        else:
            part = _user_part(block, f"{where}.content.{j}", dropped)
            if part is not None:
                parts.append(part)
    if parts or not out:
        plain = len(parts) == 1 and parts[0]["type"] == "text" and len(parts[0]) == 2
        out.append({"role": "user", "content": parts[0]["text"] if plain else parts})
    return out


def _user_part(block: dict[str, Any], where: str, dropped: list[str] | None) -> Part | None:
    kind = block["type"]
    if kind == "text":
        return _text_part(block, where)
    if kind == "image":
        return {"type": "image_url", "image_url": {"url": _image_url(block, where)}}
    if kind == "document":
        return _document(block, where, dropped)
    if kind in ("thinking", "redacted_thinking"):
        return None
    _untranslatable(f"{where}: {kind!r} blocks", where, dropped)
    return None


def _untranslatable(what: str, where: str, dropped: list[str] | None) -> None:
    if dropped is None:
        raise InvalidRequest(f"{what} can only be sent to an Anthropic model.", param=where)
    dropped.append(what)


def _source(block: dict[str, Any], where: str) -> dict[str, Any]:
    source = block.get("source")
    if not isinstance(source, dict):
        raise InvalidRequest(f"{where}.source: Field required.", param=where)
    return source


def _image_url(block: dict[str, Any], where: str) -> str:
    source = _source(block, where)
    kind = source.get("type")
    if kind == "base64":
        media, data = source.get("media_type"), source.get("data")
        if not isinstance(media, str) or not isinstance(data, str) or not data:
            raise InvalidRequest(
                f"{where}.source: a base64 image needs `media_type` and `data`.", param=where
            )
        return f"data:{media};base64,{data}"
    if kind == "url" and isinstance(source.get("url"), str) and source["url"]:
        return str(source["url"])
    raise InvalidRequest(
        f"{where}.source.type: Input should be 'base64' or 'url' (with its fields).", param=where
    )


def _document(block: dict[str, Any], where: str, dropped: list[str] | None) -> Part | None:
    source = _source(block, where)
    kind = source.get("type")
    if kind == "text" and isinstance(source.get("data"), str):
        return {"type": "text", "text": source["data"]}
    if kind == "base64" and isinstance(source.get("data"), str):
        media = source.get("media_type") or "application/pdf"
        file: dict[str, Any] = {"file_data": f"data:{media};base64,{source['data']}"}
        title = block.get("title")
        file["filename"] = title if isinstance(title, str) and title else "document.pdf"
        return {"type": "file", "file": file}
    _untranslatable(f"{where}: a document by {kind!r}", where, dropped)
    return None


def _tool_result(block: dict[str, Any], where: str, dropped: list[str] | None) -> dict[str, Any]:
    call_id = block.get("tool_use_id")
    if not isinstance(call_id, str) or not call_id:
        raise InvalidRequest(f"{where}.tool_use_id: Field required.", param=where)
    content = block.get("content")
    text: str | list[Part]
    if content is None:
        text = ""
    elif isinstance(content, str):
        text = content
    else:
        parts = [
            p
            for j, b in enumerate(_blocks(content, where))
            if (p := _user_part(b, f"{where}.content.{j}", dropped)) is not None
        ]
        texts = [p["text"] for p in parts if p["type"] == "text"]
        # a chat tool message holds text only: images in a tool result cannot follow it
        text = "".join(texts) if len(texts) == len(parts) else parts
    if block.get("is_error") is True and isinstance(text, str):
        text = "Error: " + text if text else "Error"
    return {"role": "tool", "tool_call_id": call_id, "content": text}


def _assistant(
    blocks: list[dict[str, Any]], where: str, dropped: list[str] | None
) -> dict[str, Any]:
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for j, block in enumerate(blocks):
        kind = block["type"]
        at = f"{where}.content.{j}"
        if kind == "text":
            texts.append(_text_part(block, at)["text"])
        elif kind == "tool_use":
            call_id, name = block.get("id"), block.get("name")
            if not isinstance(call_id, str) or not isinstance(name, str) or not name:
                raise InvalidRequest(f"{at}: a tool_use block needs `id` and `name`.", param=at)
            args = block.get("input")
            calls.append(
                {
                    "id": call_id,
                    "type": "function",
                    "function": {
                        "name": name,
                        "arguments": orjson.dumps(args if args is not None else {}).decode(),
                    },
                }
            )
        elif kind in ("thinking", "redacted_thinking"):
            continue
        else:
            _untranslatable(f"{at}: {kind!r} blocks", at, dropped)
    msg: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts else None}
    if calls:
        msg["tool_calls"] = calls
    elif msg["content"] is None:
        msg["content"] = ""
    return msg


# ---------------------------------------------------------------- tools, thinking


def _tools(body: dict[str, Any], out: dict[str, Any]) -> None:
    tools = body.get("tools")
    if tools is not None:
        if not isinstance(tools, list):
            raise InvalidRequest("tools: Input should be an array.", param="tools")
        converted: list[dict[str, Any]] = []
        for j, tool in enumerate(tools):
            if not isinstance(tool, dict):
                raise InvalidRequest(f"tools.{j}: Input should be an object.", param="tools")
            if tool.get("type") not in (None, "custom"):
                converted.append(tool)  # a server tool: only its provider knows it
                continue
            name = tool.get("name")
            if not isinstance(name, str) or not name:
                raise InvalidRequest(f"tools.{j}.name: Field required.", param="tools")
            schema = tool.get("input_schema")
            fn: dict[str, Any] = {
                "name": name,
                "parameters": schema
                if isinstance(schema, dict)
                else {"type": "object", "properties": {}},
            }
            if isinstance(tool.get("description"), str):
                fn["description"] = tool["description"]
            converted.append({"type": "function", "function": fn})
        if converted:
            out["tools"] = converted
    choice = body.get("tool_choice")
    if choice is None:
        return
    kind = choice.get("type") if isinstance(choice, dict) else None
    assert kind is None or isinstance(choice, dict)
    if kind == "auto":
        out["tool_choice"] = "auto"
    elif kind == "any":
        out["tool_choice"] = "required"
    elif kind == "none":
        out["tool_choice"] = "none"
    elif kind == "tool" and isinstance(choice.get("name"), str) and choice["name"]:
        out["tool_choice"] = {"type": "function", "function": {"name": choice["name"]}}
    else:
        raise InvalidRequest(
            'tool_choice: Input should be {"type": "auto" | "any" | "none"} or '
            '{"type": "tool", "name": …}.',
            param="tool_choice",
        )
    if isinstance(choice, dict) and choice.get("disable_parallel_tool_use") is True:
        out["parallel_tool_calls"] = False
    if "tools" not in out:
        out.pop("tool_choice", None)
        out.pop("parallel_tool_calls", None)


def _thinking(thinking: Any, out: dict[str, Any]) -> None:
    if thinking is None:
        return
    kind = thinking.get("type") if isinstance(thinking, dict) else None
    if kind == "disabled":
        return
    if kind == "enabled":
        assert isinstance(thinking, dict)
        budget = thinking.get("budget_tokens")
        if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1024:
            raise InvalidRequest(
                "thinking.enabled.budget_tokens: Input should be an integer of at least 1024.",
                param="thinking",
            )
        out["reasoning_effort"] = effort_for_budget(budget)
        return
    if kind == "adaptive":
        out["reasoning_effort"] = "medium"
        return
    raise InvalidRequest(
        'thinking: Input should be {"type": "enabled", "budget_tokens": …} or '
        '{"type": "disabled"}.',
        param="thinking",
    )
