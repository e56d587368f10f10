"""OpenAI Chat Completions request → Anthropic Messages request (pure, no I/O).

Rules (spec ``providers.md`` §3):

* ``system``/``developer`` messages, wherever they appear, become the top-level
  ``system`` (a string for one plain message, text blocks otherwise).
* ``tool`` messages become ``tool_result`` blocks of a user message; assistant
  ``tool_calls`` become ``tool_use`` blocks whose ``input`` is the parsed arguments.
* Consecutive messages of the same role are merged: Anthropic requires alternation.
* ``max_tokens`` is mandatory upstream; the channel's ``default_max_tokens`` (4096)
  fills it in when the client gave none.
* ``cache_control`` on a content part, a tool call, a tool definition or a message
  (OpenRouter/LiteLLM style) is passed on to the block (for a message: its last block).
* Legacy ``functions``/``function_call`` are rewritten to ``tools`` first
  (``legacy_functions.py``).
* Extended thinking (``thinking``, ``reasoning_effort``) and thinking blocks
  sent back on assistant messages: ``anthropic_thinking.py``.
"""

from __future__ import annotations

from typing import Any

import orjson

from relaygate.errors import InvalidRequest
from relaygate.providers.anthropic_thinking import apply_thinking, thinking_blocks_of
from relaygate.providers.base import Target, number_field, require_messages
from relaygate.providers.legacy_functions import upgrade_legacy_functions

__all__ = ["DEFAULT_MAX_TOKENS", "VERTEX_ANTHROPIC_VERSION", "build_messages_body"]

DEFAULT_MAX_TOKENS = 4096
#: ``anthropic_version`` in the body of a Vertex AI request
VERTEX_ANTHROPIC_VERSION = "vertex-2023-10-16"

_TOOL_CHOICE_STRINGS: dict[str, dict[str, Any]] = {
    "auto": {"type": "auto"},
    "required": {"type": "any"},
    "any": {"type": "any"},
    "none": {"type": "none"},
}

Block = dict[str, Any]


def build_messages_body(target: Target, body: dict[str, Any], stream: bool) -> dict[str, Any]:
    """The JSON body of ``POST /v1/messages`` for an OpenAI-shaped ``body``."""
    return build_messages_request(target, body, stream)[0]


def build_messages_request(
    target: Target, body: dict[str, Any], stream: bool
) -> tuple[dict[str, Any], bool]:
    """``(Messages body, whether the client used legacy functions)``."""
    body, legacy = upgrade_legacy_functions(body)
    messages = require_messages(body)
    system_blocks: list[Block] = []
    system_plain = True  # every system message was a plain string without cache_control
    turns: list[tuple[str, list[Block]]] = []

    for i, msg in enumerate(messages):
        if not isinstance(msg, dict):
            raise InvalidRequest(f"`messages[{i}]` must be an object.", param=f"messages[{i}]")
        role = msg.get("role")
        if role in ("system", "developer"):
            blocks = _content_blocks(msg.get("content"), i, text_only=True)
            _apply_message_cache_control(msg, blocks)
            if not isinstance(msg.get("content"), str) or "cache_control" in msg:
                system_plain = False
            system_blocks.extend(blocks)
            continue
        if role == "user":
            blocks = _content_blocks(msg.get("content"), i, text_only=False)
            _apply_message_cache_control(msg, blocks)
            _append_turn(turns, "user", blocks)
        elif role == "assistant":
            blocks = _assistant_blocks(msg, i)
            _apply_message_cache_control(msg, blocks)
            _append_turn(turns, "assistant", blocks)
        elif role == "tool":
            _append_turn(turns, "user", [_tool_result(msg, i)])
        else:
            raise InvalidRequest(
                f"`messages[{i}].role` {role!r} is not supported for this model; use "
                "system, developer, user, assistant or tool.",
                param=f"messages[{i}].role",
            )

    if not turns:
        raise InvalidRequest(
            "`messages` must contain at least one user or assistant message.", param="messages"
        )

    max_given = body.get("max_tokens") is not None or body.get("max_completion_tokens") is not None
    out: dict[str, Any] = {
        "model": target.upstream_model,
        "max_tokens": _max_tokens(target, body),
    }
    if system_blocks:
        if system_plain and len(system_blocks) == 1:
            out["system"] = system_blocks[0]["text"]
        else:
            out["system"] = system_blocks
    out["messages"] = [{"role": role, "content": _compact(blocks)} for role, blocks in turns]
    _sampling(body, out)
    _tools(body, out)
    if legacy and isinstance(out.get("tool_choice"), dict) and out["tool_choice"]["type"] != "none":
        out["tool_choice"]["disable_parallel_tool_use"] = True  # the legacy shape has one call
    elif legacy and "tools" in out and "tool_choice" not in out:
        out["tool_choice"] = {"type": "auto", "disable_parallel_tool_use": True}
    user = body.get("user")
    if isinstance(user, str) and user:
        out["metadata"] = {"user_id": user}
    apply_thinking(
        body,
        out,
        target.config,
        default_max_tokens=_max_tokens(target, {}),
        max_given=max_given,
    )
    if stream:
        out["stream"] = True
    if target.profile == "vertex":
        # Vertex AI: the model is in the URL, the version in the body
        # (``:rawPredict`` / ``:streamRawPredict``, recorded in TestGoogleCommon)
        del out["model"]
        out["anthropic_version"] = str(
            target.config.get("anthropic_version") or VERTEX_ANTHROPIC_VERSION
        )
        beta = target.config.get("anthropic_beta")
        if beta:
            out["anthropic_beta"] = [beta] if isinstance(beta, str) else list(beta)
    return out, legacy


# ---------------------------------------------------------------- messages


def _append_turn(turns: list[tuple[str, list[Block]]], role: str, blocks: list[Block]) -> None:
    if not blocks:
        return  # an empty message would be rejected upstream; it carries nothing anyway
    if turns and turns[-1][0] == role:
        turns[-1][1].extend(blocks)
    else:
        turns.append((role, list(blocks)))


def _compact(blocks: list[Block]) -> str | list[Block]:
    """One plain text block travels as a string (smaller, same meaning)."""
    if len(blocks) == 1 and len(blocks[0]) == 2 and blocks[0].get("type") == "text":
        text: str = blocks[0]["text"]
        return text
    return blocks


def _apply_message_cache_control(msg: dict[str, Any], blocks: list[Block]) -> None:
    cache = msg.get("cache_control")
    if isinstance(cache, dict) and blocks:
        blocks[-1]["cache_control"] = cache


def _text_block(text: str, part: dict[str, Any] | None = None) -> Block:
    block: Block = {"type": "text", "text": text}
    if part is not None and isinstance(part.get("cache_control"), dict):
        block["cache_control"] = part["cache_control"]
    return block


def _content_blocks(content: Any, i: int, *, text_only: bool) -> list[Block]:
    if content is None:
        return []
    if isinstance(content, str):
        return [_text_block(content)] if content else []
    if not isinstance(content, list):
        raise InvalidRequest(
            f"`messages[{i}].content` must be a string or an array of content parts.",
            param=f"messages[{i}].content",
        )
    blocks: list[Block] = []
    for j, part in enumerate(content):
        param = f"messages[{i}].content[{j}]"
        if not isinstance(part, dict):
            raise InvalidRequest(f"`{param}` must be an object.", param=param)
        kind = part.get("type")
        if kind in ("text", "refusal"):
            text = part.get(kind)
            if not isinstance(text, str):
                raise InvalidRequest(f"`{param}.{kind}` must be a string.", param=param)
            if text:
                blocks.append(_text_block(text, part))
        elif kind == "image_url" and not text_only:
            blocks.append(_image_block(part, param))
        else:
            raise InvalidRequest(
                f"`{param}.type` {kind!r} is not supported here by this model.", param=param
            )
    return blocks


def _image_block(part: dict[str, Any], param: str) -> Block:
    spec = part.get("image_url")
    url = spec.get("url") if isinstance(spec, dict) else spec
    if not isinstance(url, str) or not url:
        raise InvalidRequest(f"`{param}.image_url.url` must be a non-empty string.", param=param)
    source: dict[str, Any]
    if url.startswith("data:"):
        header, sep, data = url[5:].partition(",")
        media_type, _, encoding = header.partition(";")
        if not sep or encoding != "base64" or not media_type or not data:
            raise InvalidRequest(
                f"`{param}.image_url.url` must be a base64 data URL "
                "(data:image/png;base64,…) or an http(s) URL.",
                param=param,
            )
        source = {"type": "base64", "media_type": media_type, "data": data}
    elif url.startswith(("http://", "https://")):
        source = {"type": "url", "url": url}
    else:
        raise InvalidRequest(
            f"`{param}.image_url.url` must be a data: URL or an http(s) URL.", param=param
        )
    block: Block = {"type": "image", "source": source}
    if isinstance(part.get("cache_control"), dict):
        block["cache_control"] = part["cache_control"]
    return block


def _assistant_blocks(msg: dict[str, Any], i: int) -> list[Block]:
    # thinking blocks sent back by the client come first: Anthropic requires the
    # thinking block before the tool_use block of a turn
    blocks = thinking_blocks_of(msg, i)
    blocks.extend(_content_blocks(msg.get("content"), i, text_only=True))
    tool_calls = msg.get("tool_calls")
    if tool_calls is None:
        return blocks
    if not isinstance(tool_calls, list):
        raise InvalidRequest(
            f"`messages[{i}].tool_calls` must be an array.", param=f"messages[{i}].tool_calls"
        )
    for j, call in enumerate(tool_calls):
        param = f"messages[{i}].tool_calls[{j}]"
        fn = call.get("function") if isinstance(call, dict) else None
        if not isinstance(call, dict) or not isinstance(fn, dict):
            raise InvalidRequest(f"`{param}` must be a function tool call.", param=param)
        call_id, name = call.get("id"), fn.get("name")
        if not isinstance(call_id, str) or not call_id or not isinstance(name, str) or not name:
            raise InvalidRequest(f"`{param}` needs an `id` and a `function.name`.", param=param)
        block: Block = {"type": "tool_use", "id": call_id, "name": name}
        block["input"] = _arguments(fn, param)
        if isinstance(call.get("cache_control"), dict):
            block["cache_control"] = call["cache_control"]
        blocks.append(block)
    return blocks


def _arguments(fn: dict[str, Any], param: str) -> dict[str, Any]:
    args = fn.get("arguments")
    if isinstance(args, dict):
        return args
    if args is None or (isinstance(args, str) and not args.strip()):
        return {}
    if isinstance(args, str):
        try:
            parsed = orjson.loads(args)
        except orjson.JSONDecodeError as exc:
            raise InvalidRequest(
                f"`{param}.function.arguments` is not valid JSON.", param=param
            ) from exc
        if isinstance(parsed, dict):
            return parsed
    raise InvalidRequest(
        f"`{param}.function.arguments` must be a JSON object encoded as a string.", param=param
    )


def _tool_result(msg: dict[str, Any], i: int) -> Block:
    call_id = msg.get("tool_call_id")
    if not isinstance(call_id, str) or not call_id:
        raise InvalidRequest(
            f"`messages[{i}].tool_call_id` is required for tool messages.",
            param=f"messages[{i}].tool_call_id",
        )
    content = msg.get("content")
    block: Block = {"type": "tool_result", "tool_use_id": call_id}
    if isinstance(content, str):
        block["content"] = content
    elif content is not None:
        block["content"] = _content_blocks(content, i, text_only=False)
    else:
        block["content"] = ""
    if isinstance(msg.get("cache_control"), dict):
        block["cache_control"] = msg["cache_control"]
    return block


# ---------------------------------------------------------------- parameters


def _max_tokens(target: Target, body: dict[str, Any]) -> int:
    for key in ("max_tokens", "max_completion_tokens"):
        value = body.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InvalidRequest(f"`{key}` must be a positive integer.", param=key)
        return value
    default = target.config.get("default_max_tokens")
    if isinstance(default, int) and not isinstance(default, bool) and default > 0:
        return default
    return DEFAULT_MAX_TOKENS


def _sampling(body: dict[str, Any], out: dict[str, Any]) -> None:
    temperature = number_field(body, "temperature")
    if temperature is not None:
        out["temperature"] = min(max(temperature, 0), 1)
    top_p = number_field(body, "top_p")
    if top_p is not None:
        out["top_p"] = top_p
    top_k = number_field(body, "top_k")
    if top_k is not None:
        out["top_k"] = int(top_k)
    stop = body.get("stop")
    if stop is None:
        return
    if isinstance(stop, str):
        stop = [stop]
    if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
        raise InvalidRequest("`stop` must be a string or an array of strings.", param="stop")
    sequences = [s for s in stop if s.strip()]  # Anthropic rejects whitespace-only ones
    if sequences:
        out["stop_sequences"] = sequences


def _tools(body: dict[str, Any], out: dict[str, Any]) -> None:
    tools = body.get("tools")
    if tools is None or tools == []:
        return  # a tool_choice without tools is meaningless upstream: dropped
    if not isinstance(tools, list):
        raise InvalidRequest("`tools` must be an array.", param="tools")
    converted: list[dict[str, Any]] = []
    for j, tool in enumerate(tools):
        if not isinstance(tool, dict):
            raise InvalidRequest(f"`tools[{j}]` must be an object.", param=f"tools[{j}]")
        if tool.get("type", "function") != "function":
            converted.append(tool)  # an Anthropic-native tool (e.g. web_search_20250305)
            continue
        fn = tool.get("function")
        name = fn.get("name") if isinstance(fn, dict) else None
        if not isinstance(fn, dict) or not isinstance(name, str) or not name:
            raise InvalidRequest(
                f"`tools[{j}].function.name` is required.", param=f"tools[{j}].function"
            )
        schema = fn.get("parameters")
        item: dict[str, Any] = {
            "name": name,
            "input_schema": schema
            if isinstance(schema, dict)
            else {"type": "object", "properties": {}},
        }
        description = fn.get("description")
        if isinstance(description, str) and description:
            item["description"] = description
        if isinstance(tool.get("cache_control"), dict):
            item["cache_control"] = tool["cache_control"]
        converted.append(item)
    out["tools"] = converted

    choice = _tool_choice(body.get("tool_choice"))
    if body.get("parallel_tool_calls") is False:
        if choice is None:
            choice = {"type": "auto"}
        if choice["type"] != "none":
            choice["disable_parallel_tool_use"] = True
    if choice is not None:
        out["tool_choice"] = choice


def _tool_choice(choice: Any) -> dict[str, Any] | None:
    if choice is None:
        return None
    if isinstance(choice, str) and choice in _TOOL_CHOICE_STRINGS:
        return dict(_TOOL_CHOICE_STRINGS[choice])
    if isinstance(choice, dict):
        fn = choice.get("function")
        name = fn.get("name") if isinstance(fn, dict) else None
        if isinstance(name, str) and name:
            return {"type": "tool", "name": name}
    raise InvalidRequest(
        '`tool_choice` must be "auto", "required", "none" or '
        '{"type": "function", "function": {"name": …}}.',
        param="tool_choice",
    )
