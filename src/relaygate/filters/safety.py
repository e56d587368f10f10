"""The content-safety filter (docs/safety.md): the operator's word lists applied to every
text the model reads (``before``), to whole answers (``on_response``) and to streams
(``on_chunk``/``on_end``, through the hold-back window of ``safety/stream_guard.py``).

- ``block`` in a prompt: 402 ``content_policy_violation`` naming the category, before
  the upstream is called. In an answer: the choice's content becomes the notice, its
  reasoning and tool calls are removed, ``finish_reason`` is ``content_filter``. In a
  stream: nothing of the word is released; the stream ends with a chunk carrying the
  notice and ``finish_reason: "content_filter"`` (``StopStream``: the relay closes the
  upstream call and bills what was delivered).
- ``mask``: the word's original span is replaced (in the body the upstream receives, in
  the answer, in the stream).
- ``log``: the text passes.

Every hit goes to the :class:`~relaygate.safety.base.AuditSink`. The policy is read
from the :class:`~relaygate.safety.base.PolicyHolder` once per request (a stream keeps
the policy it started with). With no policy, or an empty one, each hook returns at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from relaygate.context import RelayContext, Slot
from relaygate.errors import ContentPolicyError
from relaygate.filters.safety_texts import request_texts
from relaygate.safety.base import AuditSink, PolicyHolder, SafetyHit, SafetySettings
from relaygate.safety.matcher import CompiledPolicy, mask_text
from relaygate.safety.stream_guard import StreamGuard
from relaygate.stages import Chunk, StopStream

__all__ = ["SafetyFilter"]

_REASONING_KEYS = ("reasoning_content", "reasoning")


@dataclass(slots=True)
class _StreamState:
    guard: StreamGuard
    template: dict[str, Any] = field(default_factory=dict)  # id, created, model


_STREAM: Slot[_StreamState] = Slot("safety.stream")
_OFF: Slot[bool] = Slot("safety.off")  # no policy when the stream started


def _group(ctx: RelayContext) -> str:
    return ctx.user.group_name if ctx.user is not None else "default"


def _refusal(hit: SafetyHit) -> ContentPolicyError:
    return ContentPolicyError(
        f"The request was refused by the content policy: it contains text listed under "
        f"'{hit.category}'. Rephrase the request and try again."
    )


class SafetyFilter:
    """The stage hooks of content safety (``stages.py``)."""

    def __init__(self, holder: PolicyHolder, audit: AuditSink, settings: SafetySettings) -> None:
        self.holder = holder
        self.audit = audit
        self.settings = settings

    # -- shared ------------------------------------------------------------------

    @property
    def modifies_output(self) -> bool:
        """Whether answers may be changed now (``stages.py`` ``FilterChain.output_filtered``):
        output checks on and some list holds a word."""
        return self.settings.check_output and self._policy() is not None

    def _policy(self) -> CompiledPolicy | None:
        policy = self.holder.policy
        if not isinstance(policy, CompiledPolicy) or not policy.words:
            return None
        return policy

    def screen_text(self, text: str, group: str) -> list[SafetyHit]:
        """The hits of ``text`` for a user group (other callers: online search drops a
        search result with a ``block`` hit)."""
        policy = self._policy()
        if policy is None or not text:
            return []
        return policy.scan(text, group)

    def _record(self, ctx: RelayContext, hits: list[SafetyHit], where: str, text: str) -> None:
        if hits:
            self.audit.record(ctx, hits, where, text)

    def _masked(self, text: str, hits: list[SafetyHit]) -> str:
        spans = [(h.start, h.end) for h in hits if h.action == "mask"]
        return mask_text(text, spans, self.settings.mask) if spans else text

    # -- before: every text the model reads --------------------------------------

    async def before(self, ctx: RelayContext, body: dict[str, Any]) -> None:
        if not self.settings.check_input:
            return
        policy = self._policy()
        if policy is None:
            return
        group = _group(ctx)
        blocked: SafetyHit | None = None
        for text, put, where in list(request_texts(ctx.endpoint, body)):
            hits = policy.scan(text, group)
            if not hits:
                continue
            self._record(ctx, hits, where, text)
            for hit in hits:
                if hit.action == "block" and blocked is None:
                    blocked = hit
            if blocked is None:
                masked = self._masked(text, hits)
                if masked is not text:
                    put(masked)
        if blocked is not None:
            raise _refusal(blocked)

    # -- on_response: a whole answer ---------------------------------------------

    def on_response(self, ctx: RelayContext, obj: dict[str, Any]) -> None:
        if not self.settings.check_output:
            return
        policy = self._policy()
        choices = obj.get("choices")
        if policy is None or not isinstance(choices, list):
            return
        group = _group(ctx)
        for choice in choices:
            if not isinstance(choice, dict):
                continue
            msg = choice.get("message")
            if isinstance(msg, dict):
                self._check_message(ctx, policy, group, choice, msg)
            elif isinstance(choice.get("text"), str):  # a completions answer
                hits = policy.scan(choice["text"], group)
                self._record(ctx, hits, "answer", choice["text"])
                if any(h.action == "block" for h in hits):
                    choice["text"] = self.settings.notice
                    choice["finish_reason"] = "content_filter"
                elif hits:
                    choice["text"] = self._masked(choice["text"], hits)

    def _check_message(
        self,
        ctx: RelayContext,
        policy: CompiledPolicy,
        group: str,
        choice: dict[str, Any],
        msg: dict[str, Any],
    ) -> None:
        fields: list[tuple[dict[str, Any], str, str]] = [(msg, "content", "answer")]
        fields += [(msg, key, "reasoning") for key in _REASONING_KEYS]
        calls = msg.get("tool_calls")
        if isinstance(calls, list):
            for call in calls:
                if isinstance(call, dict) and isinstance(call.get("function"), dict):
                    fields.append((call["function"], "arguments", "tool"))
        if isinstance(msg.get("function_call"), dict):
            fields.append((msg["function_call"], "arguments", "tool"))
        blocked = False
        masked: list[tuple[dict[str, Any], str, str]] = []
        for holder, key, where in fields:
            text = holder.get(key)
            if not isinstance(text, str) or not text:
                continue
            hits = policy.scan(text, group)
            if not hits:
                continue
            self._record(ctx, hits, where, text)
            if any(h.action == "block" for h in hits):
                blocked = True
            else:
                masked.append((holder, key, self._masked(text, hits)))
        if blocked:
            msg["content"] = self.settings.notice
            for key in (*_REASONING_KEYS, "tool_calls", "function_call"):
                msg.pop(key, None)
            choice["finish_reason"] = "content_filter"
            return
        for holder, key, text in masked:
            holder[key] = text

    # -- streams -------------------------------------------------------------------

    def _stream(self, ctx: RelayContext) -> _StreamState | None:
        st = ctx.get(_STREAM)
        if st is not None or ctx.get(_OFF):
            return st
        policy = self._policy() if self.settings.check_output else None
        if policy is None:
            ctx.put(_OFF, True)
            return None
        st = _StreamState(StreamGuard(policy, _group(ctx), self.settings.mask))
        ctx.put(_STREAM, st)
        return st

    def on_chunk(self, ctx: RelayContext, chunk: Chunk) -> list[Chunk]:
        st = self._stream(ctx)
        if st is None:
            return [chunk]
        obj = chunk.obj
        choices = obj.get("choices") if obj is not None else None
        if not isinstance(choices, list) or not choices:
            return [chunk]
        assert obj is not None
        if not st.template:
            st.template = {k: obj[k] for k in ("id", "created", "model") if k in obj}
        changed = False
        for choice in choices:
            if not isinstance(choice, dict):
                continue
            delta = choice.get("delta")
            index = choice.get("index", 0)
            index = index if isinstance(index, int) else 0
            if isinstance(delta, dict):
                changed |= self._feed_delta(ctx, st, index, delta)
            if choice.get("finish_reason") is not None:
                if not isinstance(delta, dict):
                    delta = choice["delta"] = {}
                changed |= self._flush_choice(ctx, st, index, delta)
        if changed:
            chunk.replace(obj)
        return [chunk]

    def _feed_delta(
        self, ctx: RelayContext, st: _StreamState, index: int, delta: dict[str, Any]
    ) -> bool:
        changed = False
        for key, where in (("content", "stream"), *((k, "reasoning") for k in _REASONING_KEYS)):
            text = delta.get(key)
            if isinstance(text, str) and text:
                delta[key] = self._feed(ctx, st, (index, key), text, where)
                changed = True
        calls = delta.get("tool_calls")
        if isinstance(calls, list):
            for pos, call in enumerate(calls):
                fn = call.get("function") if isinstance(call, dict) else None
                args = fn.get("arguments") if isinstance(fn, dict) else None
                if isinstance(args, str) and args:
                    assert isinstance(fn, dict) and isinstance(call, dict)
                    tool = call.get("index", pos)
                    fn["arguments"] = self._feed(ctx, st, (index, "tool", tool), args, "tool")
                    changed = True
        return changed

    def _feed(
        self, ctx: RelayContext, st: _StreamState, key: tuple[Any, ...], text: str, where: str
    ) -> str:
        step = st.guard.feed(key, text)
        if step.hits:
            self._record(ctx, step.hits, where, step.window)
        if step.blocked is not None:
            raise StopStream([self._notice(st, key[0])])
        return step.released

    def _flush_choice(
        self, ctx: RelayContext, st: _StreamState, index: int, delta: dict[str, Any]
    ) -> bool:
        """A choice finishes: what its windows hold goes out with its finish chunk."""
        changed = False
        for key in st.guard.field_keys():
            assert isinstance(key, tuple)
            if key[0] != index:
                continue
            guard = st.guard.field(key)
            if guard.stopped:
                continue
            where = "tool" if key[1] == "tool" else "stream" if key[1] == "content" else "reasoning"
            step = guard.flush()
            if step.hits:
                self._record(ctx, step.hits, where, step.window)
            if step.blocked is not None:
                raise StopStream([self._notice(st, index)])
            if not step.released:
                continue
            changed = True
            if key[1] == "tool":
                calls = delta.setdefault("tool_calls", [])
                calls.append({"index": key[2], "function": {"arguments": step.released}})
            else:
                delta[key[1]] = (delta.get(key[1]) or "") + step.released
        return changed

    def _notice(self, st: _StreamState, index: Any) -> Chunk:
        obj: dict[str, Any] = {
            "id": st.template.get("id", ""),
            "object": "chat.completion.chunk",
            "created": st.template.get("created", 0),
            "model": st.template.get("model", ""),
            "choices": [
                {
                    "index": index if isinstance(index, int) else 0,
                    "delta": {"content": self.settings.notice},
                    "finish_reason": "content_filter",
                }
            ],
        }
        return Chunk.of(obj)

    def on_end(self, ctx: RelayContext) -> list[Chunk]:
        """The stream ends: release what the windows still hold (a choice that had no
        finish chunk, or text after it)."""
        st = ctx.get(_STREAM)
        if st is None:
            return []
        indexes = sorted({k[0] for k in st.guard.field_keys() if isinstance(k, tuple)})
        out: list[Chunk] = []
        for index in indexes:
            delta: dict[str, Any] = {}
            if self._flush_choice(ctx, st, index, delta):
                obj = {
                    "id": st.template.get("id", ""),
                    "object": "chat.completion.chunk",
                    "created": st.template.get("created", 0),
                    "model": st.template.get("model", ""),
                    "choices": [{"index": index, "delta": delta, "finish_reason": None}],
                }
                out.append(Chunk.of(obj))
        return out
