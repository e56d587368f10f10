"""The OpenAI Realtime API over WebSocket (``GET {prefix}/realtime?model=...``), emulated.

Deterministic: the server sends ``session.created`` on connect; answers ``session.update``
with ``session.updated`` carrying the whole session (the fields of every update received so
far merged, as OpenAI does: tests see shaped values there), ``conversation.item.create`` with
``conversation.item.created`` (the item kept in the conversation), ``response.create`` with
``response.created`` (then a pause of the knobs' ``chunk_interval_ms``), the knobs'
``reply`` in ``chunks`` deltas, ``response.output_text.done``
and ``response.done`` whose ``usage`` counts the conversation's text (input) and the reply
(output). Audio, emulated: ``input_audio_buffer.append`` collects base64 audio and
``input_audio_buffer.commit`` turns it into a conversation item of one audio token per
:data:`AUDIO_BYTES_PER_TOKEN` bytes (``conversation.item.created``); a session whose
``modalities`` / ``output_modalities`` include ``"audio"`` answers with
:data:`AUDIO_TOKENS_PER_TEXT_TOKEN` audio tokens per reply token. ``response.done``
reports them in ``input_token_details`` / ``output_token_details`` ``audio_tokens`` (and in
``input_tokens`` / ``output_tokens``); such a session's reply comes as audio deltas (a little
silence) each followed by a transcript delta (``response.audio_transcript.*`` beta,
``response.output_audio_transcript.*`` GA) and an ``audio`` / ``output_audio`` content part.
``response.cancel`` is accepted silently (a response
here is always done before the next event is read). Event names follow the GA API; a
client that sent ``OpenAI-Beta: realtime=v1`` gets the beta names
(``response.text.delta``/``.done``). A binary frame is echoed back (not an API feature: it
lets tests see binary frames pass). An unknown event type is answered with an ``error``
event and the session stays open.

Failures: the upgrade goes through ``Provider.api`` checks (the key) and ``Provider.gate``
(``error-NNN`` models and the ``fail_*`` knobs refuse it with that HTTP status); a model whose
name contains ``close-after-N`` closes the socket (1011) after N responses, ``close-now``
right after ``session.created``. :func:`realtime_counts` says how many sessions are open and
how many ended, and how (for tests: a client leaving must close the upstream session), and
the client events received (``events``, parsed; None for a frame that was not JSON).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import re
import weakref
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import WSMsgType, web

from relaygate.emulator.base import EarlyResponse, Provider, count_tokens, split_text
from relaygate.emulator.knobs import Knobs, RecordedRequest

__all__ = ["RealtimeCounts", "add_realtime_routes", "realtime_counts"]

_CLOSE_AFTER = re.compile(r"close-after-(\d+)")
#: bytes of (decoded) input audio per emulated audio token
AUDIO_BYTES_PER_TOKEN = 4800
#: audio tokens of a reply per text token, when the session outputs audio
AUDIO_TOKENS_PER_TEXT_TOKEN = 3
#: (beta, audio output) -> the reply's delta and done events, its text field, its part type
_OUTPUT = {
    (True, False): ("response.text.delta", "response.text.done", "text", "output_text"),
    (False, False): ("response.output_text.delta", "response.output_text.done", "text",
                     "output_text"),
    (True, True): ("response.audio_transcript.delta", "response.audio_transcript.done",
                   "transcript", "audio"),
    (False, True): ("response.output_audio_transcript.delta",
                    "response.output_audio_transcript.done", "transcript", "output_audio"),
}  # fmt: skip
_SILENCE = base64.b64encode(bytes(480)).decode()  # 10 ms of 24 kHz pcm16 mono, base64


@dataclass(slots=True)
class RealtimeCounts:
    open: int = 0
    ended: int = 0
    #: close codes of the ended sessions, as the emulator saw them (client's or its own)
    closes: list[int] = field(default_factory=list)
    #: the client events received, parsed (None: a text frame that was not JSON)
    events: list[Any] = field(default_factory=list)


_COUNTS: weakref.WeakKeyDictionary[Provider, RealtimeCounts] = weakref.WeakKeyDictionary()


def realtime_counts(provider: Provider) -> RealtimeCounts:
    """The realtime sessions of one emulator (``EmulatorServer.impl``)."""
    counts = _COUNTS.get(provider)
    if counts is None:
        counts = _COUNTS[provider] = RealtimeCounts()
    return counts


class _Session:
    """One emulated session's conversation and event numbering."""

    def __init__(self, provider: Provider, model: str, beta: bool) -> None:
        self.provider = provider
        self.model = model
        self.beta = beta
        self.items: list[str] = []  # text of the conversation items
        self.instructions = ""
        self.responses = 0
        self.audio_tokens = 0  # input audio tokens in the conversation
        self.audio_buffer = 0  # bytes appended and not yet committed
        self.settings: dict[str, Any] = {}  # what session.update events set, merged
        self._n = 0

    def event(self, kind: str, **fields: Any) -> str:
        self._n += 1
        return orjson.dumps({"type": kind, "event_id": f"event_{self._n:06d}", **fields}).decode()

    def session_object(self) -> dict[str, Any]:
        return {
            "type": "realtime",
            "object": "realtime.session",
            "id": "sess_emulated",
            "model": self.model,
            "output_modalities": ["text"],
            **self.settings,
            "instructions": self.instructions,
        }

    def outputs_audio(self) -> bool:
        modes = self.settings.get("output_modalities") or self.settings.get("modalities")
        return isinstance(modes, list) and "audio" in modes

    def answer(self, knobs: Knobs, request: dict[str, Any]) -> list[str]:
        """The events of one response."""
        self.responses += 1
        rid = f"resp_{self.responses:04d}"
        item = f"item_r{self.responses:04d}"
        reply = knobs.reply
        base = {"object": "realtime.response", "id": rid, "output_modalities": ["text"]}
        out = [self.event("response.created", response={**base, "status": "in_progress"})]
        speaks = self.outputs_audio()
        delta, done, name, part = _OUTPUT[(self.beta, speaks)]
        where = {"response_id": rid, "item_id": item, "output_index": 0, "content_index": 0}
        for piece in split_text(reply, knobs.chunks):
            if speaks:  # a little silence before each piece of its transcript
                audio = "response.audio.delta" if self.beta else "response.output_audio.delta"
                out.append(self.event(audio, **where, delta=_SILENCE))
            out.append(self.event(delta, **where, delta=piece))
        out.append(self.event(done, **where, **{name: reply}))
        extra = request.get("instructions") if isinstance(request, dict) else None
        prompt_text = " ".join([self.instructions, *self.items, str(extra or "")])
        text_in = max(1, count_tokens(prompt_text))
        text_out = max(1, count_tokens(reply))
        audio_out = text_out * AUDIO_TOKENS_PER_TEXT_TOKEN if self.outputs_audio() else 0
        input_tokens = text_in + self.audio_tokens
        output_tokens = text_out + audio_out
        usage = {
            "total_tokens": input_tokens + output_tokens,
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "input_token_details": {
                "text_tokens": text_in,
                "audio_tokens": self.audio_tokens,
                "cached_tokens": 0,
            },
            "output_token_details": {"text_tokens": text_out, "audio_tokens": audio_out},
        }
        message = {
            "id": item,
            "type": "message",
            "role": "assistant",
            "status": "completed",
            "content": [{"type": part, name: reply}],
        }
        self.items.append(reply)
        response = {**base, "status": "completed", "output": [message], "usage": usage}
        out.append(self.event("response.done", response=response))
        return out


def _item_text(item: Any) -> str:
    if not isinstance(item, dict):
        return ""
    parts = item.get("content")
    if not isinstance(parts, list):
        return ""
    return " ".join(
        str(p.get("text") or p.get("transcript") or "") for p in parts if isinstance(p, dict)
    )


async def _handle(
    session: _Session, ws: web.WebSocketResponse, knobs: Knobs, event: Any
) -> list[str]:
    kind = event.get("type") if isinstance(event, dict) else None
    if kind == "session.update":
        update = event.get("session")
        if not isinstance(update, dict):
            return [_error(session, event, "invalid_value", "`session` must be an object.")]
        instructions = update.get("instructions", session.instructions)
        if not isinstance(instructions, str):
            return [_error(session, event, "invalid_type", "`instructions` must be a string.")]
        session.instructions = instructions
        session.settings.update(
            {k: v for k, v in update.items() if k not in ("instructions", "type", "model")}
        )
        return [session.event("session.updated", session=session.session_object())]
    if kind == "input_audio_buffer.append":
        try:
            session.audio_buffer += len(base64.b64decode(str(event.get("audio")), validate=True))
        except (binascii.Error, ValueError):
            return [_error(session, event, "invalid_value", "`audio` must be base64.")]
        return []
    if kind == "input_audio_buffer.commit":
        tokens = -(-session.audio_buffer // AUDIO_BYTES_PER_TOKEN)
        session.audio_tokens += tokens
        session.audio_buffer = 0
        item = {"id": f"item_a{session.audio_tokens:04d}", "type": "message", "role": "user",
                "content": [{"type": "input_audio", "transcript": None}]}  # fmt: skip
        return [session.event("input_audio_buffer.committed", item_id=item["id"]),
                session.event("conversation.item.created", item=item)]  # fmt: skip
    if kind == "response.cancel":
        return []
    if kind == "conversation.item.create":
        item = event.get("item")
        session.items.append(_item_text(item))
        stored = {
            "id": f"item_{len(session.items):04d}",
            **(item if isinstance(item, dict) else {}),
        }
        name = "conversation.item.created" if session.beta else "conversation.item.added"
        return [session.event(name, previous_item_id=None, item=stored)]
    if kind == "response.create":
        request = event.get("response")
        events = session.answer(knobs, request if isinstance(request, dict) else {})
        if knobs.chunk_interval_ms:  # response.created, a pause, then the rest
            await ws.send_str(events[0])
            await asyncio.sleep(knobs.chunk_interval_ms / 1000)
            return events[1:]
        return events
    code = "invalid_event" if kind is None else "unknown_event"
    return [_error(session, event, code, f"Unsupported event type {str(kind)[:64]!r} (emulated).")]


def _error(session: _Session, event: Any, code: str, message: str) -> str:
    error = {
        "type": "invalid_request_error",
        "code": code,
        "message": message,
        "param": None,
        "event_id": event.get("event_id") if isinstance(event, dict) else None,
    }
    return session.event("error", error=error)


def _close_after(model: str) -> int | None:
    if "close-now" in model:
        return 0
    m = _CLOSE_AFTER.search(model)
    return int(m.group(1)) if m else None


def add_realtime_routes(
    provider: Provider, app: web.Application, prefixes: tuple[str, ...]
) -> None:
    """Register ``GET {prefix}/realtime`` for each prefix."""
    counts = realtime_counts(provider)
    core = provider.core

    async def realtime(request: web.Request) -> web.StreamResponse:
        knobs = core.knobs
        provider.stats._record(
            RecordedRequest(request.method, request.path, request.query, request.headers, None)
        )
        model = request.query.get("model", "")
        try:
            provider.check_request(request, knobs)
            if not model:
                raise EarlyResponse(provider.error(400, "Missing required parameter: 'model'."))
            await provider.gate(knobs, model)
        except EarlyResponse as early:
            return early.response
        ws = web.WebSocketResponse(protocols=("realtime",), heartbeat=None)
        await ws.prepare(request)
        beta = "realtime=v1" in request.headers.get("OpenAI-Beta", "")
        session = _Session(provider, model, beta)
        limit = _close_after(model)
        counts.open += 1
        try:
            await ws.send_str(session.event("session.created", session=session.session_object()))
            if limit == 0:
                await ws.close(code=1011, message=b"emulated close")
            async for msg in ws:
                if msg.type is WSMsgType.BINARY:
                    await ws.send_bytes(msg.data)
                    continue
                if msg.type is not WSMsgType.TEXT:
                    break
                try:
                    event = orjson.loads(msg.data)
                except orjson.JSONDecodeError:
                    event = None
                counts.events.append(event)
                for frame in await _handle(session, ws, core.knobs, event):
                    await ws.send_str(frame)
                if limit is not None and session.responses >= limit:
                    await ws.close(code=1011, message=b"emulated close")
                    break
        finally:
            counts.open -= 1
            counts.ended += 1
            counts.closes.append(ws.close_code if ws.close_code is not None else 1006)
        return ws

    for prefix in prefixes:
        app.router.add_get(f"{prefix}/realtime", realtime)
