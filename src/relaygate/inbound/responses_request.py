"""A Responses API request (``POST /v1/responses``) as a chat-completions body, for models
served by channels without OpenAI's Responses endpoint.

``input`` is a string or a list of items: messages (``role`` with string content or
``input_text``/``input_image``/``output_text`` parts), ``function_call`` and
``function_call_output`` items; ``reasoning`` items are dropped (chat has no slot for
them). :func:`input_items` turns ``input`` into items (a string is one user message), so
that the gateway can keep a conversation as items and rebuild it for the next turn
(``previous_response_id``); :func:`to_chat` builds the chat body from those items and the
request's other fields.
"""

from __future__ import annotations

from typing import Any

from relaygate.errors import InvalidRequest

__all__ = ["input_items", "items_to_messages", "to_chat"]

_ROLES = ("user", "assistant", "system", "developer")


def input_items(raw: Any) -> list[dict[str, Any]]:
    """``input`` as a list of items (a string is one user message)."""
    if isinstance(raw, str):
        return [
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": raw}]}
        ]
    if not isinstance(raw, list) or not all(isinstance(x, dict) for x in raw):
        raise InvalidRequest("`input` must be a string or an array of items.", param="input")
    return [dict(x) for x in raw]


def _part(part: Any) -> dict[str, Any] | None:
    if not isinstance(part, dict):
        raise InvalidRequest("A message content part must be an object.", param="input")
    kind = part.get("type")
    if kind in ("input_text", "output_text", "text", "refusal"):
        text = part.get("text", part.get("refusal"))
        if not isinstance(text, str):
            raise InvalidRequest(f"A `{kind}` part needs a string `text`.", param="input")
        return {"type": "text", "text": text}
    if kind == "input_image":
        url = part.get("image_url")
        if not isinstance(url, str):
            raise InvalidRequest(
                "An `input_image` part needs an `image_url` here (file ids are not supported "
                "for this model).",
                param="input",
            )
        image: dict[str, Any] = {"url": url}
        if isinstance(part.get("detail"), str):
            image["detail"] = part["detail"]
        return {"type": "image_url", "image_url": image}
    raise InvalidRequest(
        f"Content parts of type `{kind}` are not supported for this model.", param="input"
    )


def _content(raw: Any) -> str | list[dict[str, Any]]:
    if isinstance(raw, str):
        return raw
    if not isinstance(raw, list):
        raise InvalidRequest("A message's `content` must be a string or an array.", param="input")
    parts = [p for p in map(_part, raw) if p is not None]
    if all(p["type"] == "text" for p in parts):
        return "".join(p["text"] for p in parts)
    return parts


def items_to_messages(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Chat messages for Responses items; consecutive function calls become one assistant
    message with several ``tool_calls``."""
    out: list[dict[str, Any]] = []
    for item in items:
        kind = item.get("type", "message")
        if kind == "message":
            role = item.get("role")
            if role not in _ROLES:
                raise InvalidRequest(
                    f"A message's `role` must be one of {', '.join(_ROLES)}.", param="input"
                )
            out.append({"role": "system" if role == "developer" else role,
                        "content": _content(item.get("content"))})  # fmt: skip
        elif kind == "function_call":
            call_id, name = item.get("call_id"), item.get("name")
            if not isinstance(call_id, str) or not isinstance(name, str):
                raise InvalidRequest(
                    "A `function_call` item needs a string `call_id` and `name`.", param="input"
                )
            args = item.get("arguments")
            call = {
                "id": call_id,
                "type": "function",
                "function": {"name": name, "arguments": args if isinstance(args, str) else "{}"},
            }
            last = out[-1] if out else None
            if last is not None and last["role"] == "assistant" and "tool_calls" in last:
                last["tool_calls"].append(call)
            else:
                out.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            call_id, output = item.get("call_id"), item.get("output")
            if not isinstance(call_id, str):
                raise InvalidRequest(
                    "A `function_call_output` item needs a string `call_id`.", param="input"
                )
            text = output if isinstance(output, str) else _content(output)
            out.append({"role": "tool", "tool_call_id": call_id, "content": text})
        elif kind == "reasoning":
            continue  # chat has no place for earlier reasoning
        else:
            raise InvalidRequest(
                f"Input items of type `{kind}` are not supported for this model.", param="input"
            )
    return out


def _tools(raw: Any) -> list[dict[str, Any]]:
    if not isinstance(raw, list):
        raise InvalidRequest("`tools` must be an array.", param="tools")
    out = []
    for tool in raw:
        if not isinstance(tool, dict) or tool.get("type") != "function":
            kind = tool.get("type") if isinstance(tool, dict) else None
            raise InvalidRequest(
                f"Tools of type `{kind}` are not supported for this model; only `function`.",
                param="tools",
            )
        fn: dict[str, Any] = {"name": tool.get("name")}
        for name in ("description", "parameters", "strict"):
            if tool.get(name) is not None:
                fn[name] = tool[name]
        out.append({"type": "function", "function": fn})
    return out


def _tool_choice(raw: Any) -> Any:
    if isinstance(raw, str):
        return raw
    if isinstance(raw, dict) and raw.get("type") == "function":
        return {"type": "function", "function": {"name": raw.get("name")}}
    raise InvalidRequest("This `tool_choice` is not supported for this model.", param="tool_choice")


def _response_format(text: Any) -> dict[str, Any] | None:
    fmt = text.get("format") if isinstance(text, dict) else None
    if not isinstance(fmt, dict) or fmt.get("type") in (None, "text"):
        return None
    if fmt.get("type") == "json_object":
        return {"type": "json_object"}
    if fmt.get("type") == "json_schema":
        schema = {k: fmt[k] for k in ("name", "schema", "strict", "description") if k in fmt}
        return {"type": "json_schema", "json_schema": schema}
    raise InvalidRequest("This `text.format` is not supported.", param="text.format")


def to_chat(body: dict[str, Any], items: list[dict[str, Any]]) -> dict[str, Any]:
    """The chat-completions body for a Responses request ``body`` whose whole conversation
    (earlier turns included) is ``items``."""
    messages = items_to_messages(items)
    instructions = body.get("instructions")
    if isinstance(instructions, str) and instructions:
        messages.insert(0, {"role": "system", "content": instructions})
    if not messages:
        raise InvalidRequest("`input` must not be empty.", param="input")
    chat: dict[str, Any] = {"model": body.get("model"), "messages": messages}
    if body.get("stream") is True:
        chat["stream"] = True
        chat["stream_options"] = {"include_usage": True}
    if body.get("tools"):
        chat["tools"] = _tools(body["tools"])
    if body.get("tool_choice") is not None:
        chat["tool_choice"] = _tool_choice(body["tool_choice"])
    if isinstance(body.get("parallel_tool_calls"), bool) and body.get("tools"):
        chat["parallel_tool_calls"] = body["parallel_tool_calls"]
    limit = body.get("max_output_tokens")
    if limit is not None:
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            raise InvalidRequest(
                "`max_output_tokens` must be a positive integer.", param="max_output_tokens"
            )
        chat["max_tokens"] = limit
    for name in ("temperature", "top_p", "user"):
        if body.get(name) is not None:
            chat[name] = body[name]
    fmt = _response_format(body.get("text"))
    if fmt is not None:
        chat["response_format"] = fmt
    reasoning = body.get("reasoning")
    if isinstance(reasoning, dict) and isinstance(reasoning.get("effort"), str):
        chat["reasoning_effort"] = reasoning["effort"]
    return chat
