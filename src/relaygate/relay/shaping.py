"""Request shaping in the relay: which rules apply to one attempt, and the chat body an
attempt sends (docs/request-shaping.md; the rules and their application are
``services/shaping.py``).

An attempt's rules are the model's (the ``shaping`` of the route of the model the client
asked for, from the catalog) and then the channel's (``config.shaping`` of the attempt's
channel, carried in ``Target.config``). The channel is only known per attempt, so the body is
shaped per attempt, from the client's body each time: a failover to another channel does not
carry the first channel's rules. Without any rule this is two dictionary look-ups and the
body itself is returned.

Handlers that send a body of another API natively (an Anthropic channel given the
Anthropic Messages body, a Responses upstream given the Responses body) shape it with
``attempt_rules`` and ``shape_anthropic`` / ``shape_responses`` themselves.
"""

from __future__ import annotations

from typing import Any

from relaygate.context import RelayContext
from relaygate.providers.base import Target
from relaygate.services.shaping import shape_chat
from relaygate.state import AppState

__all__ = ["attempt_rules", "shaped_chat"]

Rules = dict[str, Any]


def attempt_rules(state: AppState, ctx: RelayContext, target: Target) -> tuple[Rules, ...]:
    """The rule sets of this attempt, in the order they apply: the model's, the channel's
    (each only when it has rules); ``()`` for none."""
    model = state.catalog.shaping(ctx.model or "")
    channel = target.config.get("shaping") if target.config else None
    if not channel:
        return (model,) if model else ()
    return (model, channel) if model else (channel,)


def shaped_chat(
    state: AppState, ctx: RelayContext, target: Target, body: dict[str, Any]
) -> dict[str, Any]:
    """The chat-completions body this attempt sends: ``body`` itself when no rule applies,
    else a shaped copy (``body`` is not changed)."""
    model = state.catalog.shaping(ctx.model or "")
    channel = target.config.get("shaping") if target.config else None
    if model:
        body = shape_chat(body, model)
    if channel:
        body = shape_chat(body, channel)
    return body
