"""OpenAI chat body → Baidu ERNIE v1 (wenxinworkshop) chat body.

* system and developer messages → the top-level ``system`` string;
* messages must alternate user / assistant and be odd in number (start and end with
  the user): consecutive messages of the same side are merged (texts joined by a blank
  line); a conversation that still does not alternate is refused with a 400 naming
  the message;
* tools → the legacy ``functions`` list; an assistant tool call → ``function_call``
  (one per turn), a ``tool`` message → ``role: "function"`` with the function's name;
* ``max_tokens`` / ``max_completion_tokens`` → ``max_output_tokens``;
  ``frequency_penalty`` (OpenAI -2..2) → ``penalty_score`` (Baidu 1.0..2.0:
  ``1 + max(0, fp) / 2``); ``temperature`` clamped into Baidu's (0, 1];
  ``stop`` → a list; ``user`` → ``user_id``;
* ``response_format`` ``{"type": "json_object"}`` / ``{"type": "text"}`` → the string
  ``"json_object"`` / ``"text"``; ``json_schema`` → ``"json_object"`` (ERNIE v1 takes no
  schema); anything else is refused with a 400 naming ``response_format``.
"""

from __future__ import annotations

from typing import Any

from relaygate.errors import InvalidRequest
from relaygate.providers.base import join_texts, number_field, require_messages
from relaygate.providers.legacy_functions import upgrade_legacy_functions

__all__ = ["build_chat_body"]

#: Baidu-only request fields a client may send as extras; passed on unchanged
_EXTRAS = ("penalty_score", "disable_search", "enable_citation", "enable_trace", "user_id")


def _text(content: Any, param: str) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts: list[str] = []
        for part in content:
            if isinstance(part, dict) and part.get("type") == "text":
                text = part.get("text")
                parts.append(text if isinstance(text, str) else "")
            else:
                raise InvalidRequest(
                    "ERNIE v1 (wenxinworkshop) accepts text content only.", param=param
                )
        return "".join(parts)
    raise InvalidRequest("Message content must be a string or an array of parts.", param=param)


def _function_call(msg: dict[str, Any], i: int) -> dict[str, Any] | None:
    calls = msg.get("tool_calls")
    if not calls:
        return None
    if not isinstance(calls, list) or len(calls) != 1 or not isinstance(calls[0], dict):
        raise InvalidRequest(
            "ERNIE v1 (wenxinworkshop) takes one function call per assistant turn.",
            param=f"messages[{i}].tool_calls",
        )
    fn = calls[0].get("function")
    name = fn.get("name") if isinstance(fn, dict) else None
    if not isinstance(name, str) or not name:
        raise InvalidRequest(
            "A tool call needs a function name.", param=f"messages[{i}].tool_calls[0].function"
        )
    args = fn.get("arguments") if isinstance(fn, dict) else None
    return {"name": name, "arguments": args if isinstance(args, str) else "{}"}


def _messages(messages: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], str]:
    system: list[str] = []
    out: list[dict[str, Any]] = []
    names: dict[str, str] = {}  # tool_call_id -> function name
    for i, msg in enumerate(messages):
        role = msg.get("role")
        param = f"messages[{i}]"
        if role in ("system", "developer"):
            system.append(_text(msg.get("content"), f"{param}.content"))
            continue
        if role == "user":
            new: dict[str, Any] = {"role": "user", "content": _text(msg.get("content"), param)}
        elif role == "assistant":
            new = {"role": "assistant", "content": _text(msg.get("content"), param)}
            call = _function_call(msg, i)
            if call is not None:
                new["function_call"] = call
                calls = msg["tool_calls"]
                if isinstance(calls[0].get("id"), str):
                    names[calls[0]["id"]] = call["name"]
        elif role == "tool":
            call_id = msg.get("tool_call_id")
            name = names.get(call_id) if isinstance(call_id, str) else None
            if name is None:
                raise InvalidRequest(
                    f"`{param}` (role tool) answers no earlier assistant tool call.", param=param
                )
            new = {"role": "function", "name": name, "content": _text(msg.get("content"), param)}
        else:
            raise InvalidRequest(
                f"ERNIE v1 (wenxinworkshop) does not accept role {role!r}.", param=f"{param}.role"
            )
        prev = out[-1] if out else None
        if prev is not None and prev["role"] == new["role"] and new["role"] != "function":
            if "function_call" in prev and "function_call" in new:
                raise InvalidRequest(
                    "Two consecutive assistant turns with function calls cannot be sent to "
                    "ERNIE v1 (wenxinworkshop).",
                    param=param,
                )
            prev["content"] = join_texts(prev["content"], new["content"])
            if "function_call" in new:
                prev["function_call"] = new["function_call"]
            continue
        out.append(new)
    for j, msg in enumerate(out):
        asks = msg["role"] != "assistant"
        if asks != (j % 2 == 0):
            raise InvalidRequest(
                "ERNIE v1 (wenxinworkshop) needs the conversation to alternate user and "
                "assistant turns, starting and ending with the user (a tool result counts as "
                f"the user's turn); turn {j + 1} ({msg['role']}) breaks that.",
                param="messages",
            )
    if not out or out[-1]["role"] == "assistant":
        raise InvalidRequest(
            "ERNIE v1 (wenxinworkshop) needs the last message to be the user's (or a tool result).",
            param="messages",
        )
    return out, join_texts(*system)


def _number(body: dict[str, Any], key: str) -> float | None:
    value = number_field(body, key)
    return None if value is None else float(value)


def _functions(body: dict[str, Any], out: dict[str, Any]) -> None:
    tools = body.get("tools")
    choice = body.get("tool_choice")
    if not tools or choice == "none":
        return
    if not isinstance(tools, list):
        raise InvalidRequest("`tools` must be an array.", param="tools")
    functions: list[dict[str, Any]] = []
    for i, tool in enumerate(tools):
        fn = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise InvalidRequest(
                "Each tool must be a function with a name.", param=f"tools[{i}].function"
            )
        item: dict[str, Any] = {"name": fn["name"]}
        if isinstance(fn.get("description"), str):
            item["description"] = fn["description"]
        item["parameters"] = fn.get("parameters") or {"type": "object", "properties": {}}
        functions.append(item)
    out["functions"] = functions
    named = None
    if isinstance(choice, dict):
        fn = choice.get("function")
        named = fn.get("name") if isinstance(fn, dict) else None
    elif choice == "required" and len(functions) == 1:
        named = functions[0]["name"]
    if isinstance(named, str):
        out["tool_choice"] = {"type": "function", "function": {"name": named}}


#: OpenAI ``response_format.type`` → ERNIE v1's ``response_format`` string
_FORMATS = {"text": "text", "json_object": "json_object", "json_schema": "json_object"}


def _response_format(body: dict[str, Any]) -> str | None:
    value = body.get("response_format")
    if value is None:
        return None
    kind = value.get("type") if isinstance(value, dict) else None
    if not isinstance(kind, str) or kind not in _FORMATS:
        raise InvalidRequest(
            "`response_format` must be an object whose `type` is `text`, `json_object` or "
            "`json_schema`.",
            param="response_format",
        )
    return _FORMATS[kind]


def build_chat_body(body: dict[str, Any], stream: bool) -> tuple[dict[str, Any], bool]:
    """``(ERNIE v1 body, whether the client used the legacy functions fields)``."""
    body, legacy = upgrade_legacy_functions(body)
    messages, system = _messages(require_messages(body))
    out: dict[str, Any] = {"messages": messages}
    if system:
        out["system"] = system
    temperature = _number(body, "temperature")
    if temperature is not None:
        out["temperature"] = min(max(temperature, 0.01), 1.0)
    top_p = _number(body, "top_p")
    if top_p is not None:
        out["top_p"] = min(max(top_p, 0.0), 1.0)
    penalty = _number(body, "frequency_penalty")
    if penalty is not None:
        out["penalty_score"] = 1.0 + min(max(penalty, 0.0), 2.0) / 2
    limit = body.get("max_completion_tokens", body.get("max_tokens"))
    if limit is not None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise InvalidRequest("`max_tokens` must be a positive integer.", param="max_tokens")
        out["max_output_tokens"] = max(limit, 2)  # Baidu's minimum is 2
    stop = body.get("stop")
    if isinstance(stop, str):
        out["stop"] = [stop]
    elif isinstance(stop, list) and stop:
        out["stop"] = stop
    user = body.get("user")
    if isinstance(user, str) and user:
        out["user_id"] = user
    for key in _EXTRAS:
        if key in body:
            out[key] = body[key]
    fmt = _response_format(body)
    if fmt is not None:
        out["response_format"] = fmt
    _functions(body, out)
    if stream:
        out["stream"] = True
    return out, legacy
