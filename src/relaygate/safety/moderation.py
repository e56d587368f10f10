"""The moderation model (docs/safety.md, "Moderation model"): with
``RELAYGATE_SAFETY_MODERATION_MODEL`` set, the texts a request sends are checked by that
model's ``/v1/moderations`` endpoint, on an enabled channel that serves the moderations
surface (``providers/surfaces.py``), through the gateway's own adaptor and transport.

:class:`Moderator` makes the call; :class:`ModerationFilter` is the stage:

* ``before`` starts the check of the prompt's texts (every message's text, all roles, or a
  string/array ``input``/``prompt``; not for the endpoints in ``SKIPPED``: moderations,
  embeddings, token counts, rerank, realtime) in the background, **beside the upstream
  call**, within ``RELAYGATE_SAFETY_MODERATION_TIMEOUT``.
* ``gate`` (``stages.py`` ``GateFilter``), awaited by the chat relay just before the first
  byte of the answer is written: a flagged prompt is refused with 402
  ``content_policy_violation`` (audited with ``where="moderation"``) and nothing of the
  answer reaches the client (the upstream call has run, and is not charged). For a whole
  (non-stream) answer, ``gate`` then checks the answer itself: a flagged answer is replaced
  by the notice with ``finish_reason: "content_filter"`` (audited, ``action="block"``).
  The time to first token grows only when the moderation call is slower than the upstream's
  first byte.
* A relay that does not await the gate (the native paths of other client formats, the
  endpoints beyond chat: it leaves ``stages.GATED`` unset) gets the old behaviour: the
  verdict is awaited in ``before``, before the upstream call, and completed non-stream
  answers are only audited, in ``after``. Streamed answers are not sent to the model.

A moderation call that fails or times out does not block: it is logged
(``relaygate.safety``) and the request goes on. Texts longer than ``MAX_CHARS`` in total are
cut to their last ``MAX_CHARS`` characters (the latest turns).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any, Protocol

import orjson

from relaygate.context import RelayContext, Slot
from relaygate.errors import ContentPolicyError
from relaygate.providers.base import Target, UpstreamRequest
from relaygate.providers.registry import AdaptorRegistry
from relaygate.providers.surfaces import SurfaceCall, channel_serves
from relaygate.safety.base import AuditSink, SafetyHit, SafetySettings
from relaygate.stages import GATED
from relaygate.storage.records import ChannelRecord
from relaygate.transport.base import Transport

__all__ = ["MAX_CHARS", "SKIPPED", "ModerationFilter", "Moderator", "Verdict", "prompt_texts"]

log = logging.getLogger("relaygate.safety")

MAX_CHARS = 32_000
#: endpoints that generate nothing a moderation model should see: a client's own
#: moderations call (it would be refused instead of answered), embeddings, token counts,
#: rerank, realtime sessions
SKIPPED = frozenset({"moderations", "embeddings", "count_tokens", "rerank", "realtime"})
_ANSWER: Slot[str] = Slot("safety.moderation_answer")


class Channels(Protocol):
    """``Catalog.channels_for``: the enabled channels of a model, by priority."""

    def channels_for(self, model: str) -> list[ChannelRecord] | None: ...


class Targets(Protocol):
    """``Router.target``: where one call on a channel goes (its next usable key)."""

    def target(
        self,
        channel: ChannelRecord,
        model: str,
        affinity: str | None = None,
        api_key: str | None = None,
    ) -> Target: ...


class Verdict:
    __slots__ = ("categories", "flagged", "text")

    def __init__(self, flagged: bool, categories: list[str], text: str) -> None:
        self.flagged = flagged
        self.categories = categories
        self.text = text  # what was checked (for the audit's excerpt)


_TASK: Slot[asyncio.Task[Verdict | None] | None] = Slot("safety.moderation_task")


def _texts_of(content: Any, out: list[str]) -> None:
    if isinstance(content, str):
        if content:
            out.append(content)
    elif isinstance(content, list):
        for part in content:
            if isinstance(part, str):
                out.append(part)
            elif isinstance(part, dict) and isinstance(part.get("text"), str):
                out.append(part["text"])


def prompt_texts(body: dict[str, Any]) -> list[str]:
    """Every text of a request the model will read (messages of every role, tool
    results, or ``input``/``prompt``), the last ``MAX_CHARS`` characters of them."""
    out: list[str] = []
    messages = body.get("messages")
    if isinstance(messages, list):
        for m in messages:
            if isinstance(m, dict):
                _texts_of(m.get("content"), out)
    else:
        for name in ("input", "prompt"):
            _texts_of(body.get(name), out)
    total = 0
    kept: list[str] = []
    for text in reversed(out):
        if total + len(text) > MAX_CHARS:
            kept.append(text[len(text) - (MAX_CHARS - total) :])
            break
        kept.append(text)
        total += len(text)
    return [t for t in reversed(kept) if t]


def _answer_text(obj: dict[str, Any]) -> str:
    parts: list[str] = []
    for choice in obj.get("choices") or ():
        if isinstance(choice, dict):
            message = choice.get("message")
            if isinstance(message, dict):
                _texts_of(message.get("content"), parts)
                _texts_of(message.get("reasoning_content"), parts)
    return "\n".join(parts)[-MAX_CHARS:]


class Moderator:
    """One moderation call per check, on the first enabled channel of the model that serves
    the moderations surface; None (not flagged, not blocking) when it fails."""

    def __init__(
        self,
        settings: SafetySettings,
        *,
        channels: Channels,
        targets: Targets,
        adaptors: AdaptorRegistry,
        transport: Transport,
    ) -> None:
        self.model = settings.moderation_model
        self.timeout = settings.moderation_timeout
        self._channels = channels
        self._targets = targets
        self._adaptors = adaptors
        self._transport = transport
        self.failures = 0

    def _request(self, texts: Sequence[str]) -> UpstreamRequest | None:
        for ch in self._channels.channels_for(self.model) or ():
            if channel_serves(ch.provider, ch.profile, ch.config, "moderations"):
                target = self._targets.target(ch, self.model)
                adaptor: Any = self._adaptors.get(target.provider)
                call = SurfaceCall(
                    "POST", "/moderations", json={"model": self.model, "input": list(texts)}
                )
                req: UpstreamRequest = adaptor.surface_request(target, call)
                return req
        return None

    async def _call(self, texts: Sequence[str]) -> Verdict | None:
        req = self._request(texts)
        if req is None:
            log.warning(
                "no enabled channel serves the moderation model", extra={"model": self.model}
            )
            return None
        async with self._transport.request(req, stream=False) as resp:
            raw = await resp.read()
            status = resp.status
        if status >= 400:
            raise RuntimeError(f"the moderation model answered {status}: {raw[:200]!r}")
        doc = orjson.loads(raw)
        flagged = False
        cats: list[str] = []
        for result in doc.get("results") or ():
            if isinstance(result, dict) and result.get("flagged") is True:
                flagged = True
                categories = result.get("categories")
                if isinstance(categories, dict):
                    cats.extend(k for k, v in categories.items() if v is True and k not in cats)
        return Verdict(flagged, cats, "\n".join(texts))

    async def check(self, texts: Sequence[str]) -> Verdict | None:
        """The model's verdict on ``texts``; None when the call failed or took longer
        than the timeout (logged; the caller does not block)."""
        if not texts:
            return None
        try:
            return await asyncio.wait_for(self._call(texts), self.timeout)
        except Exception as exc:
            self.failures += 1
            log.warning(
                "the moderation model failed; not blocking",
                extra={"model": self.model, "error": repr(exc)[:300]},
            )
            return None


def _hit(verdict: Verdict, model: str, action: str) -> SafetyHit:
    return SafetyHit(
        word="",
        list_id=0,
        list_name=f"moderation:{model}"[:64],
        category=",".join(verdict.categories)[:64] or "flagged",
        action=action,
        start=0,
        end=0,
    )


class ModerationFilter:
    """The moderation stage (added to the filter chain when a model is set)."""

    def __init__(self, moderator: Moderator, audit: AuditSink, settings: SafetySettings) -> None:
        self.moderator = moderator
        self.audit = audit
        self.settings = settings

    def start(self, ctx: RelayContext, body: dict[str, Any]) -> None:
        """Send the prompt's texts to the moderation model, in the background."""
        if not self.settings.check_input or ctx.endpoint in SKIPPED:
            return
        texts = prompt_texts(body)
        if texts:
            ctx.put(_TASK, asyncio.get_running_loop().create_task(self.moderator.check(texts)))

    async def gate(self, ctx: RelayContext, answer: dict[str, Any] | None = None) -> None:
        """Wait for the verdict of :meth:`start` (bounded by the moderation timeout) and
        refuse a flagged prompt; then check a whole ``answer`` (the chat relay calls this
        just before it writes the first byte, so the moderation ran beside the upstream
        call)."""
        task = ctx.get(_TASK)
        if task is not None:
            ctx.put(_TASK, None)
            self._refuse(ctx, await task)
        if answer is not None and self.settings.check_output:
            await self._check_answer(ctx, answer)

    async def _check_answer(self, ctx: RelayContext, answer: dict[str, Any]) -> None:
        text = _answer_text(answer)
        verdict = await self.moderator.check([text]) if text else None
        if verdict is None or not verdict.flagged:
            return
        self.audit.record(ctx, [_hit(verdict, self.moderator.model, "block")], "moderation", text)
        for choice in answer.get("choices") or ():
            message = choice.get("message") if isinstance(choice, dict) else None
            if isinstance(message, dict):
                message["content"] = self.settings.notice
                message.pop("reasoning_content", None)
                message.pop("tool_calls", None)
                choice["finish_reason"] = "content_filter"

    def _refuse(self, ctx: RelayContext, verdict: Verdict | None) -> None:
        if verdict is None or not verdict.flagged:
            return
        hit = _hit(verdict, self.moderator.model, "block")
        self.audit.record(ctx, [hit], "moderation", verdict.text)
        cats = ", ".join(verdict.categories) or "flagged"
        raise ContentPolicyError(
            f"The request was refused by the content policy (moderation: {cats}). "
            "Rephrase the request and try again."
        )

    async def before(self, ctx: RelayContext, body: dict[str, Any]) -> None:
        self.start(ctx, body)
        if not ctx.get(GATED):  # this relay does not await the gate: wait here
            await self.gate(ctx)

    def on_response(self, ctx: RelayContext, obj: dict[str, Any]) -> None:
        if self.settings.check_output and not ctx.get(GATED):  # gated: checked in gate
            text = _answer_text(obj)
            if text:
                ctx.put(_ANSWER, text)

    async def after(self, ctx: RelayContext) -> None:
        task = ctx.get(_TASK)
        if task is not None:  # the request ended before its verdict was needed
            task.cancel()
        text = ctx.get(_ANSWER)
        if not text:
            return
        verdict = await self.moderator.check([text])
        if verdict is not None and verdict.flagged:
            self.audit.record(ctx, [_hit(verdict, self.moderator.model, "log")], "moderation", text)
