"""OpenAI legacy text completions (``POST /completions``) for the OpenAI emulator family.

Every choice is the ``reply`` knob (as chat answers), cut to ``max_tokens`` tokens (default 16,
like OpenAI; ~4 characters per token) with ``finish_reason`` ``length``, else ``stop``.
``prompt`` is a string, an array of strings, a token array or an array of token arrays: one
prompt each, ``n`` choices per prompt (choice ``index`` = prompt × n + j). ``echo`` puts a text
prompt before its completion (a token prompt echoes nothing). ``suffix`` counts as prompt;
``logprobs`` are always null. Usage: prompt tokens per text prompt (plus the suffix) or the
token count of a token prompt; completion tokens of the completions only.

Streams (``stream``) are ``text_completion`` chunks ending with ``data: [DONE]``; step ``i``
of the stream carries piece ``i`` of every choice (``chunks`` knob), then one final chunk per
choice with its ``finish_reason``. Usage follows the ``usage`` knob like chat: with
``stream_options.include_usage`` a last chunk with empty ``choices`` and ``usage`` (every
chunk before it has ``"usage": null``); ``on_finish_chunk``/``in_choice`` put it on the last
finish chunk; ``never`` leaves it out. Pacing, cuts and mid-stream errors are the chat ones.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from relaygate.emulator.base import StreamPlan, count_tokens, split_text
from relaygate.emulator.knobs import Knobs
from relaygate.emulator.openai_params import (
    Host,
    bad_request,
    get_int,
    json_object,
    need_model,
    required,
)

__all__ = ["completions"]

_DONE = b"data: [DONE]\n\n"
_FINGERPRINT = "fp_emulator"


@dataclass(frozen=True, slots=True)
class _Prompt:
    text: str  # what ``echo`` repeats ("" for a token prompt)
    tokens: int


@dataclass(frozen=True, slots=True)
class _Choice:
    text: str  # echo + completion
    finish: str
    tokens: int  # completion tokens


def _prompts(host: Host, raw: Any) -> list[_Prompt]:
    def tokens(x: Any) -> bool:
        return isinstance(x, list) and bool(x) and all(isinstance(t, int) for t in x)

    if isinstance(raw, str):
        return [_Prompt(raw, count_tokens(raw))]
    if tokens(raw):
        return [_Prompt("", len(raw))]
    if isinstance(raw, list) and raw and all(isinstance(p, str) for p in raw):
        return [_Prompt(p, count_tokens(p)) for p in raw]
    if isinstance(raw, list) and raw and all(tokens(p) for p in raw):
        return [_Prompt("", len(p)) for p in raw]
    required(host, raw, "prompt")
    raise bad_request(
        host,
        "Invalid 'prompt': expected a string, an array of strings, an array of tokens or an "
        "array of token arrays.",
        "prompt",
        "invalid_type",
    )


def _choices(
    prompts: list[_Prompt], reply: str, n: int, max_tokens: int, echo: bool
) -> list[_Choice]:
    text, finish = reply, "stop"
    if count_tokens(text) > max_tokens:
        text, finish = text[: max_tokens * 4], "length"
    used = count_tokens(text)
    out: list[_Choice] = []
    for prompt in prompts:
        shown = prompt.text + text if echo else text
        out.extend(_Choice(shown, finish, used) for _ in range(n))
    return out


def _usage(prompts: list[_Prompt], suffix: str, choices: list[_Choice]) -> dict[str, int]:
    prompt = sum(p.tokens for p in prompts) + count_tokens(suffix) * len(prompts)
    completion = sum(c.tokens for c in choices)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


async def completions(
    host: Host, request: web.Request, knobs: Knobs, body: Any
) -> web.StreamResponse:
    """``POST /completions``."""
    body = json_object(host, body)
    model = need_model(host, body.get("model"))
    prompts = _prompts(host, body.get("prompt"))
    n = get_int(host, body.get("n"), "n", 1, 128, 1)
    max_tokens = get_int(host, body.get("max_tokens"), "max_tokens", 0, None, 16)
    suffix = body.get("suffix")
    suffix = suffix if isinstance(suffix, str) else ""
    stream = body.get("stream") is True
    best_of = get_int(host, body.get("best_of"), "best_of", 0, 20, 1)
    if stream and best_of > 1:
        raise bad_request(host, "Cannot stream results when best_of > 1.", "best_of")
    if best_of > 1 and best_of < n:
        raise bad_request(host, "best_of must be greater than or equal to n.", "best_of")
    trigger = await host.gate(knobs, model)
    choices = _choices(prompts, knobs.reply, n, max_tokens, body.get("echo") is True)
    usage = _usage(prompts, suffix, choices)
    cid = host.core.ids("cmpl-")
    created = int(time.time())
    base = {
        "id": cid,
        "object": "text_completion",
        "created": created,
        "model": model,
        "system_fingerprint": _FINGERPRINT,
    }
    if stream:
        opts = body.get("stream_options")
        include = isinstance(opts, dict) and opts.get("include_usage") is True
        plan = _plan(host, knobs, base, choices, usage, include)
        return await host.send_stream(request, knobs, plan, trigger)
    payload = {
        **base,
        "choices": [
            {"text": c.text, "index": i, "logprobs": None, "finish_reason": c.finish}
            for i, c in enumerate(choices)
        ],
    }
    if knobs.usage != "never":  # "never": an upstream that reports no usage at all
        payload["usage"] = usage
    return await host.send_json(request, knobs, payload)


def _plan(
    host: Host,
    knobs: Knobs,
    base: dict[str, Any],
    choices: list[_Choice],
    usage: dict[str, int],
    include: bool,
) -> StreamPlan:
    null_usage = include and knobs.usage == "include_usage"

    def frame(index: int, text: str, finish: str | None, **more: Any) -> bytes:
        obj: dict[str, Any] = {
            **base,
            "choices": [{"text": text, "index": index, "logprobs": None, "finish_reason": finish}],
        }
        if null_usage:
            obj["usage"] = None
        obj.update(more)
        return b"data: " + orjson.dumps(obj) + b"\n\n"

    pieces = [split_text(c.text, knobs.chunks) for c in choices]
    steps = max((len(p) for p in pieces), default=0)
    chunks = [
        b"".join(frame(i, p[step], None) for i, p in enumerate(pieces) if step < len(p))
        for step in range(steps)
    ]
    last = len(choices) - 1
    on_finish = knobs.usage in ("on_finish_chunk", "in_choice")
    tail = b"".join(
        frame(i, "", c.finish, **({"usage": usage} if on_finish and i == last else {}))
        for i, c in enumerate(choices)
    )
    if null_usage:
        tail += b"data: " + orjson.dumps({**base, "choices": [], "usage": usage}) + b"\n\n"
    return StreamPlan(b"", chunks, tail + _DONE, host.midstream_error_frame())
