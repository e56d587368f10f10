"""The parts of an Assistants run: its tool call, its usage and its SSE events.

Events are ``event: <name>`` then ``data: <json>``.

The order OpenAI sends and the SDK's ``AssistantEventHandler`` reads: ``thread.run.created``,
``thread.run.queued``, ``thread.run.in_progress``, ``thread.run.step.created``,
``thread.run.step.in_progress``, ``thread.message.created``, ``thread.message.in_progress``,
one ``thread.message.delta`` per piece of the answer (``Knobs.chunks`` pieces),
``thread.message.completed``, ``thread.run.step.completed``, ``thread.run.completed`` (with
usage), then ``event: done`` / ``data: [DONE]``. A run that calls a tool streams
``thread.run.step.delta`` events with the call's arguments, then ``thread.run.requires_action``.
The in-stream error (``midstream_error``) is ``event: error`` with ``{"error": {...}}``: the
spec's ``ErrorEvent`` names a bare ``Error``, but the SDK only raises on the wrapped form (a bare
one reaches the handler as an event without a name).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from relaygate.emulator.base import StreamPlan, sample_arguments, split_text

__all__ = ["DONE", "Frames", "frame", "pick_call", "stream_plan", "usage"]

DONE = b"event: done\ndata: [DONE]\n\n"


def frame(event: str, data: Any) -> bytes:
    """One SSE event (``data`` serialised now: later changes of the object are not seen)."""
    return b"event: " + event.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


ERROR = frame(
    "error",
    {
        "error": {
            "message": "The server had an error while processing your request. Sorry about that!",
            "type": "server_error",
            "param": None,
            "code": "server_error",
        }
    },
)


class Frames:
    """Events collected in order (the head or the tail of a stream)."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def add(self, event: str, data: Any) -> None:
        self.parts.append(frame(event, data))

    def plan(self, chunks: list[bytes], tail: Frames) -> StreamPlan:
        """These events, then ``chunks``, then ``tail`` and ``done``."""
        return StreamPlan(b"".join(self.parts), chunks, b"".join(tail.parts) + DONE, ERROR)


def stream_plan(step: Any, message: Any, call: Any, reply: str, pieces: int) -> list[bytes]:
    """The delta events of a run's current step: tool-call arguments or the answer's text."""
    if call is not None:
        out: list[bytes] = []
        args = str(call["function"]["arguments"])
        for i, piece in enumerate(split_text(args, pieces) or ("",)):
            func: dict[str, Any] = {"arguments": piece}
            entry: dict[str, Any] = {"index": 0, "type": "function", "function": func}
            if i == 0:
                entry["id"] = call["id"]
                func.update(name=call["function"]["name"], output=None)
            delta = {"step_details": {"type": "tool_calls", "tool_calls": [entry]}}
            out.append(
                frame(
                    "thread.run.step.delta",
                    {"id": step["id"], "object": "thread.run.step.delta", "delta": delta},
                )
            )
        return out
    return [
        frame(
            "thread.message.delta",
            {
                "id": message["id"],
                "object": "thread.message.delta",
                "delta": {
                    "content": [
                        {"index": 0, "type": "text", "text": {"value": p, "annotations": []}}
                    ]
                },
            },
        )
        for p in split_text(reply, pieces)
    ]


def pick_call(tools: list[Any], choice: Any, ids: Callable[[str], str]) -> dict[str, Any] | None:
    """The function call a run makes (the chosen function, else the first), if any.

    Only function tools are called; ``tool_choice: "none"`` calls nothing. The arguments are
    built from the function's JSON schema (its required properties).
    """
    funcs = [t["function"] for t in tools if isinstance(t, dict) and t.get("type") == "function"]
    if not funcs or choice == "none":
        return None
    func = funcs[0]
    if isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        wanted = choice["function"].get("name")
        func = next((f for f in funcs if f.get("name") == wanted), func)
    args = orjson.dumps(sample_arguments(func.get("parameters"))).decode()
    return {
        "id": ids("call_"),
        "type": "function",
        "function": {"name": func["name"], "arguments": args},
    }


def usage(prompt: int, completion: int) -> dict[str, int]:
    """A run's or a step's ``usage``."""
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
