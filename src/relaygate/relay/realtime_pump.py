"""One realtime session's frames, relayed both ways until either side goes away, and its
``response.done`` events billed as they pass (``relay/realtime.py`` opens the session;
``relay/realtime_events.py`` checks and shapes the client's frames).

Frames pass in order, text and binary. A client text frame that is not a JSON object is
answered with an ``invalid_event`` error event instead of being sent upstream; with shaping
rules, the gateway's own ``session.update`` goes first and the client's ``session.update`` /
``response.create`` are shaped. A server ``response.done`` event is charged before it is
forwarded: its ``response.usage`` (``input_tokens`` with ``input_token_details``
``cached_tokens`` and ``audio_tokens``, ``output_tokens`` with ``output_token_details``
``audio_tokens``) at the model's token and audio prices, from the balance
(``Billing.charge_deferred``: the size of a response is only known when it is done, as for
runs and batches), and recorded as one request-log row (endpoint ``realtime``, the session's
request id). After each charge the balance must still cover something, or the session ends
with an ``insufficient_quota`` error event. A long session is so billed as it goes, and a
worker that dies mid-session has charged every response it relayed.

A client that leaves while responses are in progress (``response.created`` seen, no
``response.done`` yet): the gateway sends ``response.cancel`` upstream and waits up to
:data:`DRAIN_SECONDS` for their ``response.done`` (a cancelled response reports what it
used), charging them, before it closes the upstream socket.

Content safety (``relay/realtime_safety.py``): client text frames go through
:meth:`RealtimeSafety.client` (a refused one is answered with its ``error`` event, not sent
upstream) and upstream text frames through :meth:`RealtimeSafety.upstream` while it is
watching (a list holds a word, or a response is being filtered); billing reads the
upstream's own ``response.done``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

from relaygate.asgi import Receive, Send
from relaygate.context import RelayContext
from relaygate.errors import RelayError
from relaygate.relay.pipeline import record
from relaygate.relay.realtime_events import ClientFrames, event_id, realtime_usage
from relaygate.relay.realtime_safety import RealtimeSafety
from relaygate.state import AppState

__all__ = ["DRAIN_SECONDS", "Ending", "error_event", "realtime_usage", "relay_frames"]

#: upstream close codes that cannot be sent on (reserved: no status, abnormal, TLS)
_UNSENDABLE = (1005, 1006, 1015)
#: how long a client's departure waits for the responses in progress to be reported done
DRAIN_SECONDS = 2.0
_CANCEL = '{"type":"response.cancel","event_id":"event_relaygate_cancel"}'


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
            "event_id": event_id(),
            "error": {
                "type": err.type,
                "code": err.code,
                "message": err.message,
                "param": err.param,
                "event_id": None,
            },
        }
    ).decode()


class _Biller:
    """Charges and records each ``response.done`` of one session."""

    __slots__ = ("charges", "count", "ctx", "idle", "pending", "since", "state")

    def __init__(self, state: AppState, ctx: RelayContext) -> None:
        self.state = state
        self.ctx = ctx
        self.count = 0
        self.pending = 0  # responses created and not yet done
        self.idle = asyncio.Event()  # set while no response is in progress
        self.idle.set()
        self.since = time.perf_counter()  # the current response's start, for its latency
        #: charges under way: a charge is never cut in half by the relay's end
        #: (``settle`` awaits them)
        self.charges: set[asyncio.Task[None]] = set()

    def response_started(self) -> None:
        self.since = time.perf_counter()
        self.pending += 1
        self.idle.clear()

    async def charge(self, event: dict[str, Any]) -> None:
        """Charge one response and record its row; raises ``QuotaExceeded`` when the
        balance covers nothing more afterwards. Runs as a task of its own, shielded: a
        cancelled relay does not cut it short."""
        task = asyncio.get_running_loop().create_task(self._charge(event))
        self.charges.add(task)
        task.add_done_callback(self.charges.discard)
        await asyncio.shield(task)

    async def settle(self) -> None:
        """Wait for the charges under way (their errors were or will not be needed)."""
        if self.charges:
            await asyncio.gather(*self.charges, return_exceptions=True)

    async def _charge(self, event: dict[str, Any]) -> None:
        try:
            await self._record(event)
        finally:
            self.pending = max(self.pending - 1, 0)
            if not self.pending:
                self.idle.set()
        await self.state.billing.require_funds(self.ctx)

    async def _record(self, event: dict[str, Any]) -> None:
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


class _Client:
    """Sends to the client until it is gone (a failed send, or the relay stopped it)."""

    __slots__ = ("gone", "send")

    def __init__(self, send: Send) -> None:
        self.send = send
        self.gone = False

    async def text(self, text: str) -> None:
        if not self.gone:
            await self.send({"type": "websocket.send", "text": text})

    async def binary(self, data: bytes) -> None:
        if not self.gone:
            await self.send({"type": "websocket.send", "bytes": data})


_LOST = "upstream connection lost"


async def _client_to_upstream(
    receive: Receive,
    up: aiohttp.ClientWebSocketResponse[Any],
    frames: ClientFrames,
    client: _Client,
    safety: RealtimeSafety,
) -> Ending:
    while True:
        message = await receive()
        kind = message["type"]
        if kind == "websocket.receive":
            text = message.get("text")
            try:
                if text is not None:
                    text, error = frames.check(text)
                    if error is not None:
                        await client.text(error_event(error))
                        continue
                    checked, refusal = safety.client(text)
                    if checked is None:
                        if refusal is not None:
                            await client.text(refusal)
                        continue
                    await up.send_str(checked)
                else:
                    await up.send_bytes(message.get("bytes") or b"")
            except (aiohttp.ClientError, ConnectionError, RuntimeError):
                return Ending("upstream", 1011, _LOST)
        elif kind == "websocket.disconnect":
            return Ending("client", int(message.get("code") or 1000))


async def _upstream_to_client(
    up: aiohttp.ClientWebSocketResponse[Any],
    client: _Client,
    biller: _Biller,
    frames: ClientFrames,
    safety: RealtimeSafety,
) -> Ending:
    while True:
        msg = await up.receive()
        kind = msg.type
        if kind is aiohttp.WSMsgType.TEXT:
            text: str = msg.data
            if frames.initial_id is not None and frames.hides(text):
                continue
            ending = await _observe(text, biller) if '"response.' in text else None
            if safety.watching():
                out, cancel = safety.upstream(text)
                if cancel is not None:
                    with contextlib.suppress(aiohttp.ClientError, ConnectionError, RuntimeError):
                        await up.send_str(cancel)
                for frame in out:
                    await client.text(frame)
            else:
                await client.text(text)
            if ending is not None:
                return ending
        elif kind is aiohttp.WSMsgType.BINARY:
            await client.binary(msg.data)
        elif kind is aiohttp.WSMsgType.ERROR:
            return Ending("upstream", 1011, _LOST)
        elif kind in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED):
            code = up.close_code if up.close_code is not None else 1006
            if code in _UNSENDABLE:
                return Ending("upstream", 1011, _LOST)
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


async def _drain(
    up: aiohttp.ClientWebSocketResponse[Any], outbound: asyncio.Task[Ending], biller: _Biller
) -> None:
    """The client left with responses in progress: cancel them upstream and wait (a
    while) for their ``response.done``, which the outbound task charges."""
    with contextlib.suppress(aiohttp.ClientError, ConnectionError, RuntimeError):
        await up.send_str(_CANCEL)
    idle = asyncio.ensure_future(biller.idle.wait())
    try:
        await asyncio.wait(
            (outbound, idle), timeout=DRAIN_SECONDS, return_when=asyncio.FIRST_COMPLETED
        )
    finally:
        idle.cancel()


async def relay_frames(
    state: AppState,
    ctx: RelayContext,
    receive: Receive,
    send: Send,
    up: aiohttp.ClientWebSocketResponse[Any],
    frames: ClientFrames,
    safety: RealtimeSafety,
) -> Ending:
    """Relay frames between the client (ASGI ``receive``/``send``) and ``up`` until one
    side goes away or the balance runs out; both directions' tasks are over on return."""
    biller = _Biller(state, ctx)
    client = _Client(send)
    first_update = frames.initial()
    if first_update is not None:
        try:
            await up.send_str(first_update)
        except (aiohttp.ClientError, ConnectionError, RuntimeError):
            return Ending("upstream", 1011, _LOST)
    loop = asyncio.get_running_loop()
    inbound = loop.create_task(_client_to_upstream(receive, up, frames, client, safety))
    outbound = loop.create_task(_upstream_to_client(up, client, biller, frames, safety))
    try:
        done, _ = await asyncio.wait((inbound, outbound), return_when=asyncio.FIRST_COMPLETED)
        if _left(inbound, done) and biller.pending and not outbound.done():
            client.gone = True
            await _drain(up, outbound, biller)
    finally:
        for task in (inbound, outbound):
            task.cancel()
        for task in (inbound, outbound):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await biller.settle()
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


def _left(inbound: asyncio.Task[Ending], done: set[asyncio.Task[Ending]]) -> bool:
    """Whether the client left (its task ended first, with a disconnect)."""
    if inbound not in done or inbound.cancelled() or inbound.exception() is not None:
        return False
    return inbound.result().by == "client"
