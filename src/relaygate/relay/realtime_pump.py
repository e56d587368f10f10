"""One realtime session's frames, relayed both ways until either side goes away, and its
``response.done`` events billed as they pass (``relay/realtime.py`` opens the session).

Frames pass as they are (text and binary), each in order. A server ``response.done`` event is
charged before it is forwarded: its ``response.usage`` (``input_tokens`` with
``input_token_details.cached_tokens``, ``output_tokens``) at the model's token prices, from the
balance (``Billing.charge_deferred``: the size of a response is only known when it is done, as
for runs and batches), and recorded as one request-log row (endpoint ``realtime``, the session's
request id). After each charge the balance must still cover something, or the session ends with
an ``insufficient_quota`` error event. A long session is so billed as it goes, and a worker that
dies mid-session has charged every response it relayed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

from relaygate.asgi import Receive, Send
from relaygate.context import RelayContext
from relaygate.errors import RelayError
from relaygate.providers.base import Usage
from relaygate.relay.pipeline import record
from relaygate.state import AppState

__all__ = ["Ending", "error_event", "realtime_usage", "relay_frames"]

#: upstream close codes that cannot be sent on (reserved: no status, abnormal, TLS)
_UNSENDABLE = (1005, 1006, 1015)


@dataclass(slots=True)
class Ending:
    """How a session ended: who left first, the close code to pass on, and an error to
    tell the client (None: a clean end)."""

    by: str  # "client" | "upstream" | "gateway" (the balance ran out)
    code: int = 1000
    reason: str = ""
    error: RelayError | None = None
    responses: int = 0  # response.done events billed


def error_event(err: RelayError) -> str:
    """A Realtime API ``error`` server event for ``err``."""
    return orjson.dumps(
        {
            "type": "error",
            "event_id": "event_" + os.urandom(10).hex(),
            "error": {
                "type": err.type,
                "code": err.code,
                "message": err.message,
                "param": err.param,
                "event_id": None,
            },
        }
    ).decode()


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def realtime_usage(event: dict[str, Any]) -> Usage:
    """The usage of a ``response.done`` event (zero when it reports none)."""
    response = event.get("response")
    raw = response.get("usage") if isinstance(response, dict) else None
    if not isinstance(raw, dict):
        return Usage()
    prompt = _int(raw.get("input_tokens"))
    completion = _int(raw.get("output_tokens"))
    details = raw.get("input_token_details")
    cached = _int(details.get("cached_tokens")) if isinstance(details, dict) else 0
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=prompt + completion,
        cached_tokens=min(cached, prompt),
    )


class _Biller:
    """Charges and records each ``response.done`` of one session."""

    __slots__ = ("count", "ctx", "since", "state")

    def __init__(self, state: AppState, ctx: RelayContext) -> None:
        self.state = state
        self.ctx = ctx
        self.count = 0
        self.since = time.perf_counter()  # the current response's start, for its latency

    def response_started(self) -> None:
        self.since = time.perf_counter()

    async def charge(self, event: dict[str, Any]) -> None:
        """Charge one response and record its row; raises ``QuotaExceeded`` when the
        balance covers nothing more afterwards."""
        s = self.ctx
        assert s.model is not None
        row = RelayContext(s.request_id, "realtime", client_ip=s.client_ip, started=self.since)
        row.key, row.user, row.model, row.target, row.stream = (
            s.key,
            s.user,
            s.model,
            s.target,
            True,
        )
        row.first_byte_at = time.perf_counter()
        row.finished = True
        state = self.state
        await state.billing.charge_deferred(row, s.model, realtime_usage(event), None)
        record(state, row)
        self.count += 1
        self.since = time.perf_counter()
        await state.billing.require_funds(s)


async def _client_to_upstream(receive: Receive, up: aiohttp.ClientWebSocketResponse[Any]) -> Ending:
    while True:
        message = await receive()
        kind = message["type"]
        if kind == "websocket.receive":
            text = message.get("text")
            try:
                if text is not None:
                    await up.send_str(text)
                else:
                    await up.send_bytes(message.get("bytes") or b"")
            except (aiohttp.ClientError, ConnectionError, RuntimeError):
                return Ending("upstream", 1011, "upstream connection lost")
        elif kind == "websocket.disconnect":
            return Ending("client", int(message.get("code") or 1000))


async def _upstream_to_client(
    up: aiohttp.ClientWebSocketResponse[Any], send: Send, biller: _Biller
) -> Ending:
    while True:
        msg = await up.receive()
        kind = msg.type
        if kind is aiohttp.WSMsgType.TEXT:
            text: str = msg.data
            if '"response.' in text:
                ending = await _observe(text, biller)
                if ending is not None:
                    await send({"type": "websocket.send", "text": text})
                    return ending
            await send({"type": "websocket.send", "text": text})
        elif kind is aiohttp.WSMsgType.BINARY:
            await send({"type": "websocket.send", "bytes": msg.data})
        elif kind is aiohttp.WSMsgType.ERROR:
            return Ending("upstream", 1011, "upstream connection lost")
        elif kind in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED):
            code = up.close_code if up.close_code is not None else 1006
            if code in _UNSENDABLE:
                return Ending("upstream", 1011, "upstream connection lost")
            return Ending("upstream", code, str(msg.extra or "")[:120])


async def _observe(text: str, biller: _Biller) -> Ending | None:
    """Look at a ``response.*`` event: time a created response, bill a done one. An
    Ending when the balance ran out (the event is still forwarded)."""
    if '"response.created"' in text:
        biller.response_started()
        return None
    if '"response.done"' not in text:
        return None
    try:
        event = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(event, dict) or event.get("type") != "response.done":
        return None
    try:
        await biller.charge(event)
    except RelayError as err:
        return Ending("gateway", 1008, err.code, err)
    return None


async def relay_frames(
    state: AppState,
    ctx: RelayContext,
    receive: Receive,
    send: Send,
    up: aiohttp.ClientWebSocketResponse[Any],
) -> Ending:
    """Relay frames between the client (ASGI ``receive``/``send``) and ``up`` until one
    side goes away or the balance runs out; both directions' tasks are over on return."""
    biller = _Biller(state, ctx)
    loop = asyncio.get_running_loop()
    inbound = loop.create_task(_client_to_upstream(receive, up))
    outbound = loop.create_task(_upstream_to_client(up, send, biller))
    try:
        done, _ = await asyncio.wait((inbound, outbound), return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (inbound, outbound):
            task.cancel()
        for task in (inbound, outbound):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
    first = inbound if inbound in done else outbound
    if first.cancelled():
        ending = Ending("client", 1000)
    else:
        exc = first.exception()
        if isinstance(exc, OSError):  # a send to the client failed: it is gone
            ending = Ending("client", 1006)
        elif exc is not None:
            raise exc
        else:
            ending = first.result()
    ending.responses = biller.count
    return ending
