"""Anthropic extended thinking: turning it on, and carrying thinking blocks both ways.

Rules (``docs/providers.md``, "Anthropic extended thinking"):

* Thinking is on when the request has an explicit ``thinking`` object (passed on
  as given, ``budget_tokens`` checked: an integer >= 1024) or a
  ``reasoning_effort`` (``minimal``/``low`` 1024, ``medium`` 4096, ``high``
  16384 budget tokens; ``none`` = off; a channel may override the table with
  ``config.reasoning_budgets``). An explicit ``thinking`` wins.
* ``max_tokens`` must exceed ``budget_tokens``. Without a client limit it is the
  channel default plus the budget. With ``reasoning_effort`` and a client limit
  not above the budget, the budget is added to the limit (the limit then bounds
  the visible answer); with an explicit ``thinking`` that is the client's error.
* With thinking on, ``temperature`` and ``top_k`` are not sent (Anthropic
  rejects them with thinking).
* Thinking blocks come back to the client as ``thinking_blocks`` on the message
  (``{"type": "thinking", "thinking", "signature"}`` /
  ``{"type": "redacted_thinking", "data"}``) and are accepted back on an
  assistant message; they are put first in that turn's content, before any
  ``tool_use`` block, as Anthropic requires.
"""

from __future__ import annotations

from typing import Any

from relaygate.errors import InvalidRequest

__all__ = [
    "EFFORT_BUDGETS",
    "MIN_BUDGET",
    "apply_thinking",
    "client_thinking_block",
    "thinking_blocks_of",
]

MIN_BUDGET = 1024
EFFORT_BUDGETS: dict[str, int] = {"minimal": 1024, "low": 1024, "medium": 4096, "high": 16384}

Block = dict[str, Any]


def _budget_for(effort: Any, config: dict[str, Any]) -> int | None:
    if effort is None or effort == "none":
        return None
    table = dict(EFFORT_BUDGETS)
    custom = config.get("reasoning_budgets")
    if isinstance(custom, dict):
        table.update({k: v for k, v in custom.items() if isinstance(v, int) and v >= MIN_BUDGET})
    if not isinstance(effort, str) or effort not in table:
        raise InvalidRequest(
            f"`reasoning_effort` must be one of none, {', '.join(table)}.",
            param="reasoning_effort",
        )
    return table[effort]


def apply_thinking(
    body: dict[str, Any],
    out: dict[str, Any],
    config: dict[str, Any],
    *,
    default_max_tokens: int,
    max_given: bool,
) -> None:
    """Set ``out["thinking"]`` (and adjust ``max_tokens``/sampling) from ``body``."""
    thinking = body.get("thinking")
    explicit = thinking is not None
    if explicit:
        if not isinstance(thinking, dict) or not isinstance(thinking.get("type"), str):
            raise InvalidRequest(
                '`thinking` must be an object such as {"type": "enabled", "budget_tokens": 2048}.',
                param="thinking",
            )
        budget: int | None = None
        if thinking["type"] == "enabled":
            raw = thinking.get("budget_tokens")
            if isinstance(raw, bool) or not isinstance(raw, int) or raw < MIN_BUDGET:
                raise InvalidRequest(
                    f"`thinking.budget_tokens` must be an integer of at least {MIN_BUDGET}.",
                    param="thinking.budget_tokens",
                )
            budget = raw
        out["thinking"] = thinking
    else:
        budget = _budget_for(body.get("reasoning_effort"), config)
        if budget is None:
            return
        out["thinking"] = {"type": "enabled", "budget_tokens": budget}
    if budget is None:
        return
    max_tokens: int = out["max_tokens"]
    if not max_given:
        out["max_tokens"] = default_max_tokens + budget
    elif max_tokens <= budget:
        if explicit:
            raise InvalidRequest(
                "`max_tokens` must be greater than `thinking.budget_tokens`.", param="max_tokens"
            )
        out["max_tokens"] = max_tokens + budget
    out.pop("temperature", None)
    out.pop("top_k", None)


def thinking_blocks_of(msg: dict[str, Any], i: int) -> list[Block]:
    """The Anthropic blocks for an assistant message's ``thinking_blocks`` (validated)."""
    raw = msg.get("thinking_blocks")
    if raw is None:
        return []
    param = f"messages[{i}].thinking_blocks"
    if not isinstance(raw, list):
        raise InvalidRequest(f"`{param}` must be an array.", param=param)
    blocks: list[Block] = []
    for j, item in enumerate(raw):
        kind = item.get("type") if isinstance(item, dict) else None
        if kind == "thinking":
            assert isinstance(item, dict)
            text, signature = item.get("thinking"), item.get("signature")
            if not isinstance(text, str) or not isinstance(signature, str) or not signature:
                raise InvalidRequest(
                    f"`{param}[{j}]` needs a string `thinking` and its `signature`.",
                    param=f"{param}[{j}]",
                )
            blocks.append({"type": "thinking", "thinking": text, "signature": signature})
        elif kind == "redacted_thinking":
            assert isinstance(item, dict)
            data = item.get("data")
            if not isinstance(data, str) or not data:
                raise InvalidRequest(
                    f"`{param}[{j}].data` must be a non-empty string.", param=f"{param}[{j}]"
                )
            blocks.append({"type": "redacted_thinking", "data": data})
        else:
            raise InvalidRequest(
                f"`{param}[{j}].type` must be thinking or redacted_thinking.",
                param=f"{param}[{j}]",
            )
    return blocks


def client_thinking_block(block: dict[str, Any]) -> dict[str, Any] | None:
    """An Anthropic ``thinking``/``redacted_thinking`` content block as the client sees it."""
    kind = block.get("type")
    if kind == "thinking":
        return {
            "type": "thinking",
            "thinking": str(block.get("thinking") or ""),
            "signature": str(block.get("signature") or ""),
        }
    if kind == "redacted_thinking":
        return {"type": "redacted_thinking", "data": str(block.get("data") or "")}
    return None
