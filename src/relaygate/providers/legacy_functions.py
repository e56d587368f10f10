"""The legacy ``functions`` / ``function_call`` fields (openai-python < 1.0 clients).

Most upstreams only know ``tools`` (Anthropic never had ``functions``; many
OpenAI-compatible vendors dropped them). A request that uses the legacy fields
is rewritten into the ``tools`` shape before an adaptor converts it, and the
answer is rewritten back (``message.function_call``, ``delta.function_call``,
``finish_reason: "function_call"``) so the client sees what it asked for.

* ``functions[i]`` → ``tools[i] = {"type": "function", "function": functions[i]}``;
* ``function_call``: ``"auto"``/``"none"`` → ``tool_choice`` of the same name,
  ``{"name": X}`` → ``{"type": "function", "function": {"name": X}}``;
* an assistant message's ``function_call`` → one ``tool_calls`` entry with a
  synthesised id (``call_fn_<message index>``);
* a ``role: "function"`` message → ``role: "tool"`` whose ``tool_call_id`` is the
  id of the latest earlier call of that function name.

The legacy shape carries one call: only the first tool call of an answer is
returned (the Anthropic adaptor asks for ``disable_parallel_tool_use``).
"""

from __future__ import annotations

from typing import Any

from relaygate.errors import InvalidRequest

__all__ = ["LegacyStream", "to_function_call_message", "upgrade_legacy_functions"]


def _uses_legacy(body: dict[str, Any]) -> bool:
    if "functions" in body or "function_call" in body:
        return True
    messages = body.get("messages")
    if not isinstance(messages, list):
        return False
    return any(
        isinstance(m, dict) and (m.get("role") == "function" or "function_call" in m)
        for m in messages
    )


def upgrade_legacy_functions(body: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """``(body in the tools shape, whether the answer must use the legacy shape)``.

    Returns ``body`` itself (not a copy) when it uses no legacy field.
    """
    if not _uses_legacy(body):
        return body, False
    out = dict(body)
    functions = out.pop("functions", None)
    legacy_call = out.pop("function_call", None)
    reply_legacy = functions is not None
    if functions is not None:
        if not isinstance(functions, list) or not all(isinstance(f, dict) for f in functions):
            raise InvalidRequest("`functions` must be an array of objects.", param="functions")
        if "tools" not in out:
            out["tools"] = [{"type": "function", "function": f} for f in functions]
    if legacy_call is not None and "tool_choice" not in out:
        if legacy_call in ("auto", "none"):
            out["tool_choice"] = legacy_call
        elif isinstance(legacy_call, dict) and isinstance(legacy_call.get("name"), str):
            out["tool_choice"] = {"type": "function", "function": {"name": legacy_call["name"]}}
        else:
            raise InvalidRequest(
                '`function_call` must be "auto", "none" or {"name": …}.', param="function_call"
            )
    messages = out.get("messages")
    if isinstance(messages, list):
        out["messages"] = _upgrade_messages(messages)
    return out, reply_legacy


def _upgrade_messages(messages: list[Any]) -> list[Any]:
    pending: dict[str, str] = {}  # function name -> id of its latest call
    last_id = ""
    result: list[Any] = []
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict):
            result.append(msg)
            continue
        call = msg.get("function_call")
        if msg.get("role") == "assistant" and isinstance(call, dict):
            name = call.get("name")
            if not isinstance(name, str) or not name:
                raise InvalidRequest(
                    f"`messages[{i}].function_call.name` is required.",
                    param=f"messages[{i}].function_call",
                )
            call_id = last_id = f"call_fn_{i}"
            pending[name] = call_id
            new = {k: v for k, v in msg.items() if k != "function_call"}
            arguments = call.get("arguments")
            new["tool_calls"] = [
                *(msg.get("tool_calls") or ()),
                {
                    "id": call_id,
                    "type": "function",
                    "function": {
                        "name": name,
                        "arguments": arguments if isinstance(arguments, str) else "{}",
                    },
                },
            ]
            result.append(new)
        elif msg.get("role") == "function":
            name = msg.get("name")
            call_id = pending.get(name, last_id) if isinstance(name, str) else last_id
            if not call_id:
                raise InvalidRequest(
                    f"`messages[{i}]` (role function) answers no earlier assistant "
                    "`function_call`.",
                    param=f"messages[{i}]",
                )
            new = {k: v for k, v in msg.items() if k not in ("role", "name")}
            new["role"] = "tool"
            new["tool_call_id"] = call_id
            if new.get("content") is None:
                new["content"] = ""
            result.append(new)
        else:
            result.append(msg)
    return result


def to_function_call_message(choice: dict[str, Any]) -> None:
    """Rewrite one non-stream ``choice`` in place: ``tool_calls`` → ``function_call``."""
    message = choice.get("message")
    if not isinstance(message, dict):
        return
    calls = message.pop("tool_calls", None)
    if isinstance(calls, list) and calls:
        fn = calls[0].get("function") if isinstance(calls[0], dict) else None
        if isinstance(fn, dict):
            message["function_call"] = {
                "name": fn.get("name"),
                "arguments": fn.get("arguments") or "",
            }
    if choice.get("finish_reason") == "tool_calls":
        choice["finish_reason"] = "function_call"


class LegacyStream:
    """Per-stream rewrite of ``delta.tool_calls`` into ``delta.function_call``.

    Only the tool call with index 0 is kept (the legacy shape has one call).
    """

    __slots__ = ()

    def choice(self, choice: dict[str, Any]) -> None:
        delta = choice.get("delta")
        if isinstance(delta, dict) and "tool_calls" in delta:
            calls = delta.pop("tool_calls")
            for call in calls if isinstance(calls, list) else ():
                if not isinstance(call, dict) or call.get("index", 0) != 0:
                    continue
                fn = call.get("function")
                if isinstance(fn, dict):
                    out: dict[str, Any] = {}
                    if fn.get("name"):
                        out["name"] = fn["name"]
                    out["arguments"] = fn.get("arguments") or ""
                    delta["function_call"] = out
        if choice.get("finish_reason") == "tool_calls":
            choice["finish_reason"] = "function_call"
