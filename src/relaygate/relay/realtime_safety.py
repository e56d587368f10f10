"""Content safety on a realtime session (docs/realtime.md "Content safety", docs/safety.md):
the operator's word lists applied to the client's text frames the model reads, and to the
text the model sends back, through the hold-back window of ``safety/stream_guard.py``.

Cost. Each frame reads the policy once (``AppState.safety``'s holder, taken by
:meth:`RealtimeSafety.watching` / :meth:`RealtimeSafety.client`); while no list holds a
word and no response is being filtered, frames pass as they are, unparsed.

Client frames (``RELAYGATE_SAFETY_INPUT``). A frame that may carry text the model reads
(``conversation.item.create``, ``session.update``, ``response.create``, or any frame with a
backslash, which could spell an event type in escapes) is parsed; its texts are scanned:
message content parts ``input_text`` / ``text`` / ``output_text``, ``function_call``
``arguments``, ``function_call_output`` ``output``, ``session.instructions``,
``response.instructions`` and ``response.input`` items. A ``block`` hit: the frame is not sent
upstream, the client gets an ``error`` event (``content_policy_violation``, naming the
category and the client's ``event_id``). ``mask`` hits are masked in the frame sent on.

Upstream frames (``RELAYGATE_SAFETY_OUTPUT``). Text and transcript deltas (beta and GA
names) pass through one window per (response, item, content index): only what the window
releases is sent (an empty release drops the delta), the rest goes out in one more delta
before the field's ``.done``, whose whole ``text`` / ``transcript`` becomes the filtered
text; so do the whole texts in ``response.content_part.*``, ``response.output_item.*``,
``conversation.item.*`` and ``response.done``. A ``block`` hit: the notice goes as the last
delta, ``response.cancel`` goes upstream (its possible ``error`` answer is not forwarded),
the rest of that response's text and audio deltas are dropped. Audio bytes are not
filtered: what played before the block was heard.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson

from relaygate.context import RelayContext
from relaygate.relay.realtime_events import event_id
from relaygate.safety.base import SafetyHit
from relaygate.safety.config import SafetyRuntime
from relaygate.safety.matcher import CompiledPolicy, mask_text
from relaygate.safety.stream_guard import StreamGuard

__all__ = ["RealtimeSafety"]

Key = tuple[str, int]  # (item id, content index)

#: text delta events and the field of their ``.done`` event
_DELTAS = {
    "response.text.delta": ("response.text.done", "text"),
    "response.output_text.delta": ("response.output_text.done", "text"),
    "response.audio_transcript.delta": ("response.audio_transcript.done", "transcript"),
    "response.output_audio_transcript.delta": (
        "response.output_audio_transcript.done",
        "transcript",
    ),
}
_DONES = {done: (delta, name) for delta, (done, name) in _DELTAS.items()}
_AUDIO_DELTAS = ("response.audio.delta", "response.output_audio.delta")
_PART_EVENTS = ("response.content_part.added", "response.content_part.done")
_ITEM_EVENTS = (
    "response.output_item.added",
    "response.output_item.done",
    "conversation.item.created",
    "conversation.item.added",
    "conversation.item.done",
    "conversation.item.retrieved",
)
#: content parts of the model's text (``text``/``output_text``) and speech (transcript)
_OUT_PARTS = {"text": "text", "output_text": "text", "audio": "transcript"}
_OUT_PARTS["output_audio"] = "transcript"
#: client content parts the model reads as text
_IN_PARTS = ("input_text", "text", "output_text")
_CLIENT_MARKERS = ('"conversation.item.create"', '"session.update"', '"response.create"', "\\")
_MAX_REPLIES = 256  # responses filtered at once (an upstream that never says done)
_MAX_CANCELS = 8  # our response.cancel event ids whose error answer is hidden


class _Reply:
    """One response's windows and what each field released."""

    __slots__ = ("blocked", "finals", "guard", "out")

    def __init__(self, guard: StreamGuard) -> None:
        self.guard = guard
        self.blocked = False
        self.out: dict[Key, list[str]] = {}  # released text per field seen in deltas
        self.finals: dict[Key, str] = {}  # a field's whole filtered text, once done

    def text(self, key: Key) -> str:
        return "".join(self.out.get(key, ()))


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _item_texts(item: Any, path: str) -> Iterator[tuple[dict[str, Any], str, str]]:
    """The texts the model reads in a client item: (holder, key, param path)."""
    if not isinstance(item, dict):
        return
    kind = item.get("type")
    if kind == "function_call_output":
        yield item, "output", f"{path}.output"
    elif kind == "function_call":
        yield item, "arguments", f"{path}.arguments"
    parts = item.get("content")
    if isinstance(parts, list):
        for i, part in enumerate(parts):
            if isinstance(part, dict) and part.get("type") in _IN_PARTS:
                yield part, "text", f"{path}.content[{i}].text"


def _client_texts(event: dict[str, Any]) -> Iterator[tuple[dict[str, Any], str, str]]:
    kind = event.get("type")
    if kind == "conversation.item.create":
        yield from _item_texts(event.get("item"), "item")
    elif kind == "session.update":
        session = event.get("session")
        if isinstance(session, dict):
            yield session, "instructions", "session.instructions"
    elif kind == "response.create":
        response = event.get("response")
        if isinstance(response, dict):
            yield response, "instructions", "response.instructions"
            items = response.get("input")
            if isinstance(items, list):
                for i, item in enumerate(items):
                    yield from _item_texts(item, f"response.input[{i}]")


def _refusal(hit: SafetyHit, client_event: Any, param: str) -> str:
    return orjson.dumps(
        {
            "type": "error",
            "event_id": event_id(),
            "error": {
                "type": "invalid_request_error",
                "code": "content_policy_violation",
                "message": "The event was refused by the content policy: it contains text "
                f"listed under '{hit.category}'. Rephrase it and try again.",
                "param": param,
                "event_id": client_event if isinstance(client_event, str) else None,
            },
        }
    ).decode()


class RealtimeSafety:
    """One session's content safety (see the module docstring)."""

    __slots__ = ("_cancels", "_ctx", "_group", "_input", "_output", "_policy", "_replies", "_rt")

    def __init__(self, runtime: SafetyRuntime | None, ctx: RelayContext) -> None:
        self._rt = runtime
        self._ctx = ctx
        self._group = ctx.user.group_name if ctx.user is not None else "default"
        on = runtime is not None and runtime.settings.enabled
        self._input = on and runtime is not None and runtime.settings.check_input
        self._output = on and runtime is not None and runtime.settings.check_output
        self._policy: CompiledPolicy | None = None  # read by watching(), per frame
        self._replies: dict[str, _Reply] = {}  # response id -> its windows
        self._cancels: dict[str, None] = {}  # event ids of our last response.cancel

    def _read(self) -> CompiledPolicy | None:
        assert self._rt is not None
        policy = self._rt.holder.policy
        return policy if isinstance(policy, CompiledPolicy) and policy.words else None

    def _audit(self, hits: list[SafetyHit], where: str, text: str) -> None:
        if hits and self._rt is not None:
            self._rt.audit.record(self._ctx, hits, where, text)

    # -- client frames -------------------------------------------------------------

    def client(self, text: str) -> tuple[str | None, str | None]:
        """(the frame to send upstream, None) or (None, the ``error`` event for the
        client) for one client text frame."""
        if not self._input:
            return text, None
        policy = self._read()
        if policy is None or not any(m in text for m in _CLIENT_MARKERS):
            return text, None
        try:
            event = orjson.loads(text)
        except orjson.JSONDecodeError:
            return text, None  # the upstream answers it
        if not isinstance(event, dict):
            return text, None
        masked = False
        for holder, key, param in list(_client_texts(event)):
            value = holder.get(key)
            if not isinstance(value, str) or not value:
                continue
            hits = policy.scan(value, self._group)
            if not hits:
                continue
            self._audit(hits, "prompt", value)
            blocked = next((h for h in hits if h.action == "block"), None)
            if blocked is not None:
                return None, _refusal(blocked, event.get("event_id"), param)
            spans = [(h.start, h.end) for h in hits if h.action == "mask"]
            if spans:
                assert self._rt is not None
                holder[key] = mask_text(value, spans, self._rt.settings.mask)
                masked = True
        return (orjson.dumps(event).decode() if masked else text), None

    # -- upstream frames -----------------------------------------------------------

    def watching(self) -> bool:
        """Whether upstream frames must go through :meth:`upstream` (reads the policy:
        once per frame)."""
        if not self._output:
            return False
        self._policy = self._read()
        return self._policy is not None or bool(self._replies) or bool(self._cancels)

    def upstream(self, text: str) -> tuple[list[str], str | None]:
        """The frames to send the client for one upstream text frame, and a
        ``response.cancel`` to send upstream (a block), if any."""
        if 'audio.delta"' in text:  # audio bytes: dropped only after a block
            if any(r.blocked for r in self._replies.values()):
                event = self._parse(text)
                rid = event.get("response_id") if event is not None else None
                reply = self._replies.get(rid) if isinstance(rid, str) else None
                if reply is not None and reply.blocked:
                    return [], None
            return [text], None
        event = self._parse(text)
        if event is None:
            return [text], None
        kind = event.get("type")
        if not isinstance(kind, str):
            return [text], None
        if kind in _DELTAS:
            return self._delta(text, event, kind)
        if kind in _DONES:
            return self._done(text, event, kind)
        if kind == "error" and self._cancels:
            error = event.get("error")
            ours = error.get("event_id") if isinstance(error, dict) else None
            if isinstance(ours, str) and ours in self._cancels:
                del self._cancels[ours]
                return [], None
            return [text], None
        changed = False
        if kind in _PART_EVENTS:
            rid, part = event.get("response_id"), event.get("part")
            item_id, index = event.get("item_id"), _int(event.get("content_index"))
            if isinstance(part, dict) and isinstance(item_id, str):
                changed = self._whole(rid, (item_id, index), part)
        elif kind in _ITEM_EVENTS:
            changed = self._item(event.get("response_id"), event.get("item"))
        elif kind == "response.done":
            response = event.get("response")
            rid = response.get("id") if isinstance(response, dict) else None
            output = response.get("output") if isinstance(response, dict) else None
            if isinstance(output, list):
                for item in output:
                    changed |= self._item(rid, item)
            if isinstance(rid, str):
                self._replies.pop(rid, None)
        return [orjson.dumps(event).decode() if changed else text], None

    @staticmethod
    def _parse(text: str) -> dict[str, Any] | None:
        try:
            event = orjson.loads(text)
        except orjson.JSONDecodeError:
            return None
        return event if isinstance(event, dict) else None

    def _reply(self, rid: str, create: bool) -> _Reply | None:
        reply = self._replies.get(rid)
        if reply is None and create and self._policy is not None and self._rt is not None:
            if len(self._replies) >= _MAX_REPLIES:
                self._replies.pop(next(iter(self._replies)))
            guard = StreamGuard(self._policy, self._group, self._rt.settings.mask)
            reply = self._replies[rid] = _Reply(guard)
        return reply

    def _cancel(self, rid: str) -> str:
        cid = event_id("event_relaygate_safety_")
        if len(self._cancels) >= _MAX_CANCELS:
            del self._cancels[next(iter(self._cancels))]
        self._cancels[cid] = None
        cancel = {"type": "response.cancel", "event_id": cid, "response_id": rid}
        return orjson.dumps(cancel).decode()

    def _notice(self) -> str:
        assert self._rt is not None
        return self._rt.settings.notice

    def _delta(self, text: str, event: dict[str, Any], kind: str) -> tuple[list[str], str | None]:
        rid, item_id = event.get("response_id"), event.get("item_id")
        piece = event.get("delta")
        if not isinstance(rid, str) or not isinstance(item_id, str) or not isinstance(piece, str):
            return [text], None
        reply = self._reply(rid, create=True)
        if reply is None:
            return [text], None
        if reply.blocked:
            return [], None
        key = (item_id, _int(event.get("content_index")))
        out = reply.out.setdefault(key, [])
        step = reply.guard.feed(key, piece)
        self._audit(step.hits, "stream", step.window)
        if step.blocked is not None:
            reply.blocked = True
            out.append(self._notice())
            event["delta"] = self._notice()
            return [orjson.dumps(event).decode()], self._cancel(rid)
        if not step.released:
            return [], None
        out.append(step.released)
        if step.released == piece:
            return [text], None
        event["delta"] = step.released
        return [orjson.dumps(event).decode()], None

    def _done(self, text: str, event: dict[str, Any], kind: str) -> tuple[list[str], str | None]:
        delta_kind, name = _DONES[kind]
        rid, item_id = event.get("response_id"), event.get("item_id")
        if not isinstance(item_id, str):
            return [text], None
        key = (item_id, _int(event.get("content_index")))
        reply = self._replies.get(rid) if isinstance(rid, str) else None
        if reply is None or key not in reply.out:
            # no delta went through a window: the whole text is checked
            changed = self._fix(event, name, reply, key)
            return [orjson.dumps(event).decode() if changed else text], None
        assert isinstance(rid, str)
        frames: list[str] = []
        cancel = None
        if not reply.blocked:
            step = reply.guard.field(key).flush()
            self._audit(step.hits, "stream", step.window)
            extra = step.released
            if step.blocked is not None:
                reply.blocked = True
                extra = self._notice()
                cancel = self._cancel(rid)
            if extra:
                reply.out[key].append(extra)
                fields = ("response_id", "item_id", "output_index", "content_index")
                delta = {"type": delta_kind, "event_id": event_id("event_relaygate_")}
                delta.update({k: event[k] for k in fields if k in event})
                delta["delta"] = extra
                frames.append(orjson.dumps(delta).decode())
        final = reply.finals[key] = reply.text(key)
        if event.get(name) != final:
            event[name] = final
            text = orjson.dumps(event).decode()
        frames.append(text)
        return frames, cancel

    def _fix(self, holder: dict[str, Any], name: str, reply: _Reply | None, key: Key) -> bool:
        """Put the filtered text in ``holder[name]``: the field's final text when its
        deltas went through a window, what it released when its response was blocked,
        else the whole text checked (a block: the notice). Whether it changed."""
        value = holder.get(name)
        if not isinstance(value, str):
            return False
        if reply is not None:
            if key in reply.finals:
                new = reply.finals[key]
            elif reply.blocked:
                new = reply.text(key)
            else:
                new = self._checked(value)
        else:
            new = self._checked(value)
        if new == value:
            return False
        holder[name] = new
        return True

    def _checked(self, value: str) -> str:
        policy = self._policy
        if policy is None or not value or self._rt is None:
            return value
        hits = policy.scan(value, self._group)
        if not hits:
            return value
        self._audit(hits, "answer", value)
        if any(h.action == "block" for h in hits):
            return self._rt.settings.notice
        spans = [(h.start, h.end) for h in hits if h.action == "mask"]
        return mask_text(value, spans, self._rt.settings.mask) if spans else value

    def _whole(self, rid: Any, key: Key, part: dict[str, Any]) -> bool:
        kind = part.get("type")
        name = _OUT_PARTS.get(kind) if isinstance(kind, str) else None
        if name is None:
            return False
        reply = self._replies.get(rid) if isinstance(rid, str) else None
        if reply is None:
            reply = self._owner(key[0])
        return self._fix(part, name, reply, key)

    def _owner(self, item_id: str) -> _Reply | None:
        for reply in self._replies.values():
            if any(k[0] == item_id for k in reply.out):
                return reply
        return None

    def _item(self, rid: Any, item: Any) -> bool:
        if not isinstance(item, dict):
            return False
        item_id, parts = item.get("id"), item.get("content")
        if not isinstance(item_id, str) or not isinstance(parts, list):
            return False
        changed = False
        for i, part in enumerate(parts):
            if isinstance(part, dict):
                changed |= self._whole(rid, (item_id, i), part)
        return changed
