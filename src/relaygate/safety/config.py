"""The operator's content-safety settings from the environment (``RELAYGATE_SAFETY_*``,
docs/safety.md), and :class:`SafetyRuntime`, what a worker runs for them. A wrong value
stops the start with the variable named."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from relaygate.context import RelayContext
from relaygate.safety.audit import SafetyAudit
from relaygate.safety.base import SafetyHit, SafetySettings
from relaygate.safety.lists import ListHolder
from relaygate.stages import FilterChain

__all__ = ["SafetyRuntime", "safety_settings"]

_FLAG_TRUE = ("1", "true", "yes", "on")
_FLAG_FALSE = ("0", "false", "no", "off", "")
_MAX_TEXT = 200  # characters of the notice and of the mask
_DEFAULTS = SafetySettings()


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _FLAG_TRUE:
        return True
    if value in _FLAG_FALSE:
        return False
    raise ValueError(f"{name} must be 1 or 0 (got {raw!r})")


def _text(env: Mapping[str, str], name: str, default: str, *, empty_ok: bool) -> str:
    raw = env.get(name)
    if raw is None:
        return default
    if not raw and not empty_ok:
        raise ValueError(f"{name} must not be empty")
    if len(raw) > _MAX_TEXT or any(ord(c) < 32 for c in raw):
        raise ValueError(
            f"{name} must be at most {_MAX_TEXT} characters without control characters"
        )
    return raw


def safety_settings(env: Mapping[str, str] | None = None) -> SafetySettings:
    """``RELAYGATE_SAFETY_*`` read and checked."""
    env = os.environ if env is None else env
    raw_timeout = env.get("RELAYGATE_SAFETY_MODERATION_TIMEOUT", "").strip()
    timeout = 3.0
    if raw_timeout:
        try:
            timeout = float(raw_timeout)
        except ValueError:
            raise ValueError(
                f"RELAYGATE_SAFETY_MODERATION_TIMEOUT must be a number (got {raw_timeout!r})"
            ) from None
        if not 0.05 <= timeout <= 60:
            raise ValueError(
                "RELAYGATE_SAFETY_MODERATION_TIMEOUT must be between 0.05 and 60 seconds "
                f"(got {raw_timeout!r})"
            )
    model = env.get("RELAYGATE_SAFETY_MODERATION_MODEL", "").strip()
    if len(model) > 128 or any(c.isspace() for c in model):
        raise ValueError(f"RELAYGATE_SAFETY_MODERATION_MODEL is not a model name: {model!r}")
    return SafetySettings(
        enabled=_flag(env, "RELAYGATE_SAFETY", True),
        check_input=_flag(env, "RELAYGATE_SAFETY_INPUT", True),
        check_output=_flag(env, "RELAYGATE_SAFETY_OUTPUT", True),
        t2s=_flag(env, "RELAYGATE_SAFETY_T2S", False),
        notice=_text(env, "RELAYGATE_SAFETY_NOTICE", _DEFAULTS.notice, empty_ok=True),
        mask=_text(env, "RELAYGATE_SAFETY_MASK", _DEFAULTS.mask, empty_ok=False),
        moderation_model=model,
        moderation_timeout=timeout,
    )


class HasFilters(Protocol):
    """Where the relay reads its filter chain (``AppState.filters``)."""

    filters: FilterChain


@dataclass(slots=True)
class SafetyRuntime:
    """A worker's content safety (``AppState.safety``): the settings, the word lists'
    holder, the audit writer, and the filter on the relay (``filters/safety.py``; typed
    loosely because the filters sit above this package)."""

    settings: SafetySettings
    holder: ListHolder
    audit: SafetyAudit
    filter: object | None = None

    def screen(self, text: str, group: str) -> list[SafetyHit]:
        """The hits of the current lists in ``text`` for a user of ``group`` ([] when no
        list holds a word)."""
        policy = self.holder.policy
        return policy.scan(text, group) if policy is not None else []

    def check(self, ctx: RelayContext, text: str, where: str) -> list[SafetyHit]:
        """:meth:`screen` for the request's user group, each hit audited (``where``:
        ``search`` for a search snippet, …). A caller drops the text when a hit's action
        is ``block`` (and may mask ``mask`` hits with ``safety/matcher.py`` ``mask_text``)."""
        if not text or self.holder.policy is None:
            return []
        group = ctx.user.group_name if ctx.user is not None else "default"
        hits = self.screen(text, group)
        if hits:
            self.audit.record(ctx, hits, where, text)
        return hits

    def pick_chain(self, state: HasFilters, stages: Sequence[object]) -> None:
        """Keep ``state.filters`` on ``stages`` while some list holds a word, and on
        ``stages`` without the word-list filter while none does: a chain with a chunk filter
        wraps every stream chunk (about 1 µs each), which a gateway without lists need not
        pay. Swapped on every reload; a stream keeps the chain it started with."""
        full = FilterChain(list(stages))
        lean = FilterChain([f for f in stages if f is not self.filter])

        def swap(policy: object) -> None:
            state.filters = full if policy is not None else lean

        self.holder.on_swap = swap
        swap(self.holder.policy)

    async def close(self) -> None:
        await self.audit.close()
