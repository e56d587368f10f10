"""What the gateway keeps of each response made through ``/v1/responses``, in the
``upstream_objects`` table (``storage/objects.py``, kind ``response``) with its owner and
channel; ``data`` is a JSON document:

* a **native** response (its channel serves OpenAI's Responses API): ``{"mode": "native"}``
  — the upstream keeps the conversation; the record only says whose it is and where it
  lives, so that ``previous_response_id``, GET, DELETE, ``input_items`` and ``cancel`` go
  to that channel and to no one else.
* a **translated** response (answered through chat completions): ``{"mode":
  "translated", "conversation": [...], "input": [...], "response": {...}}`` — the items of
  the whole conversation up to this turn's input, this turn's input items, and the
  response object. The next turn (``previous_response_id``) is the conversation, the
  response's output items and its own input.

A request with ``store: false`` is not recorded.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import orjson

from relaygate.context import RelayContext
from relaygate.errors import NotFound
from relaygate.state import AppState
from relaygate.storage.objects import ObjectRecord

__all__ = ["Stored", "keep", "load", "not_found", "owned_response"]

log = logging.getLogger("relaygate")

KIND = "response"


@dataclass(slots=True)
class Stored:
    record: ObjectRecord
    mode: str  # "native" | "translated"
    conversation: list[dict[str, Any]] = field(default_factory=list)
    input: list[dict[str, Any]] = field(default_factory=list)
    response: dict[str, Any] = field(default_factory=dict)

    def history(self) -> list[dict[str, Any]]:
        """The items a next turn continues from: the conversation and this output."""
        output = self.response.get("output")
        return [*self.conversation, *(output if isinstance(output, list) else [])]


def not_found(resp_id: str) -> NotFound:
    return NotFound(f"Response with id '{resp_id}' not found.", code="not_found")


def load(rec: ObjectRecord) -> Stored:
    try:
        data = orjson.loads(rec.data) if rec.data else {}
    except orjson.JSONDecodeError:
        data = {}
    if not isinstance(data, dict) or data.get("mode") != "translated":
        return Stored(rec, "native")
    return Stored(
        rec,
        "translated",
        conversation=list(data.get("conversation") or []),
        input=list(data.get("input") or []),
        response=dict(data.get("response") or {}),
    )


async def owned_response(state: AppState, resp_id: str, user_id: int) -> Stored:
    """The caller's live response ``resp_id``; anyone else's, a deleted one and an unknown
    one all get the same 404."""
    rec = await state.repo.objects.get(resp_id)
    if rec is None or rec.kind != KIND or rec.user_id != user_id or rec.deleted:
        raise not_found(resp_id)
    return load(rec)


async def keep(
    state: AppState,
    ctx: RelayContext,
    resp_id: str,
    channel_id: int,
    data: dict[str, Any],
) -> None:
    """Record a response; a database failure is logged (the answer stands, but the id
    cannot be continued or fetched later)."""
    assert ctx.user is not None
    try:
        await state.repo.objects.add(
            obj_id=resp_id,
            kind=KIND,
            user_id=ctx.user.id,
            key_id=ctx.key.id if ctx.key is not None else None,
            channel_id=channel_id,
            model=ctx.model,
            data=orjson.dumps(data).decode(),
        )
    except Exception:
        log.exception("a response could not be recorded", extra={"request_id": ctx.request_id})
