"""Shared machinery of the provider emulators: request pipeline, streaming writer, helpers."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import itertools
import math
import os
import random
import re
import struct
import threading
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, ClassVar

import orjson
from aiohttp import web

from relaygate.emulator.bodies import BadBody, read_form, read_json, recorded_body
from relaygate.emulator.knobs import Knobs, RecordedRequest, Stats

__all__ = [
    "Core",
    "EarlyResponse",
    "Provider",
    "StreamPlan",
    "count_tokens",
    "embedding_vector",
    "sample_arguments",
    "split_text",
]

JSON_CT = "application/json"
SSE_CT = "text/event-stream; charset=utf-8"
KEEPALIVE_COMMENT = b": keep-alive\n\n"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Op = Callable[[web.Request, Knobs, Any], Awaitable[web.StreamResponse]]

_STREAMING = web.RequestKey("relaygate_emulator_streaming", bool)
_TRIGGER = re.compile(r"^error-(\d{3})$")


class _CoalescedResponse(web.StreamResponse):
    """A stream response whose headers go out with the first body bytes (one send)."""

    _send_headers_immediately = False


class EarlyResponse(Exception):
    """Raised inside a handler to answer immediately with ``response`` (counted as an error)."""

    def __init__(self, response: web.Response) -> None:
        super().__init__(response.status)
        self.response = response


# ------------------------------------------------------------------------------------------
# Small deterministic helpers
# ------------------------------------------------------------------------------------------


def count_tokens(text: str) -> int:
    """Cheap deterministic token estimate (~4 characters per token)."""
    return (len(text) + 3) // 4


@lru_cache(maxsize=1024)
def split_text(text: str, n: int) -> tuple[str, ...]:
    """Split ``text`` into at most ``n`` non-empty pieces whose concatenation is ``text``.

    Splits between words (pieces start with their leading whitespace, like real tokens);
    falls back to character splits when there are fewer words than pieces.
    """
    if not text or n <= 0:
        return ()
    words = re.findall(r"\s*\S+\s*$|\s*\S+", text)
    if "".join(words) != text:  # only whitespace, or odd spacing: plain character split
        words = list(text)
    units = words if len(words) >= n else list(text)
    n = min(n, len(units))
    out: list[str] = []
    for i in range(n):
        lo = (i * len(units)) // n
        hi = ((i + 1) * len(units)) // n
        out.append("".join(units[lo:hi]))
    return tuple(out)


def _sample_value(name: str, schema: Any) -> Any:
    if not isinstance(schema, dict):
        return "example"
    enum = schema.get("enum")
    if isinstance(enum, list) and enum:
        return enum[0]
    if "default" in schema:
        return schema["default"]
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "string")
    if kind == "integer":
        return 1
    if kind == "number":
        return 1.5
    if kind == "boolean":
        return True
    if kind == "array":
        return [_sample_value(name, schema.get("items"))]
    if kind == "object":
        return sample_arguments(schema)
    lowered = name.lower()
    if any(k in lowered for k in ("location", "city", "place", "town")):
        return "Florence"
    if "unit" in lowered:
        return "celsius"
    return "example"


def sample_arguments(schema: Any) -> dict[str, Any]:
    """Arguments for a tool call built from a JSON schema's required properties."""
    if not isinstance(schema, dict):
        return {}
    props = schema.get("properties")
    if not isinstance(props, dict):
        return {}
    required = schema.get("required")
    names = [n for n in required if n in props] if isinstance(required, list) else []
    return {n: _sample_value(n, props[n]) for n in names}


@lru_cache(maxsize=4096)
def _embedding(key: str, dim: int) -> tuple[tuple[float, ...], str]:
    raw = hashlib.shake_256(key.encode()).digest(dim * 4)
    vals = [(v / 0xFFFFFFFF) * 2.0 - 1.0 for v in struct.unpack(f"<{dim}I", raw)]
    norm = math.sqrt(sum(v * v for v in vals)) or 1.0
    packed = struct.pack(f"<{dim}f", *(v / norm for v in vals))
    # Values are float32-exact, so a float32/base64 round trip is lossless.
    return struct.unpack(f"<{dim}f", packed), base64.b64encode(packed).decode()


def embedding_vector(text: str | list[int], dim: int) -> list[float]:
    """The deterministic unit vector the emulators return for ``text`` (or a token list)."""
    return list(_embedding(_embedding_key(text), dim)[0])


def embedding_base64(text: str | list[int], dim: int) -> str:
    """``embedding_vector`` as OpenAI's base64 (little-endian float32)."""
    return _embedding(_embedding_key(text), dim)[1]


def _embedding_key(item: str | list[int]) -> str:
    return item if isinstance(item, str) else "tokens:" + ",".join(map(str, item))


class IdGen:
    """Unique, cheap ids: ``<prefix><random-per-server><counter>``."""

    def __init__(self) -> None:
        self._salt = os.urandom(4).hex()
        self._n = itertools.count(1)

    def __call__(self, prefix: str) -> str:
        return f"{prefix}{self._salt}{next(self._n):012x}"


# ------------------------------------------------------------------------------------------
# Core state shared by one server's handlers (lives in the server's event-loop thread)
# ------------------------------------------------------------------------------------------


class Core:
    def __init__(self, knobs: Knobs | None = None, keep_requests: int = 50) -> None:
        self._lock = threading.Lock()
        self._initial = knobs or Knobs()
        self._knobs = self._initial
        self.stats = Stats(keep_requests)
        self.failed = 0  # injected failures since the last configure
        self.seen = 0  # requests through ``gate`` since the last configure
        self._rng = random.Random(self._knobs.seed)
        self.stopping = False
        self.ids = IdGen()
        self._hangs: set[asyncio.Future[None]] = set()

    @property
    def knobs(self) -> Knobs:
        return self._knobs

    def configure(self, **changes: Any) -> Knobs:
        with self._lock:
            self._knobs = self._knobs.with_changes(**changes)
            self._restart()
            return self._knobs

    def reset_knobs(self) -> Knobs:
        with self._lock:
            self._knobs = self._initial
            self._restart()
            return self._knobs

    def _restart(self) -> None:  # under the lock
        self.failed = 0
        self.seen = 0
        self._rng = random.Random(self._knobs.seed)

    def draw(self, knobs: Knobs) -> tuple[bool, int | None]:
        """Count one request; whether it hangs (``hang_every``) and the status it fails with
        (``fail_status``/``fail_times``/``fail_every``/``fail_rate``), None to answer it."""
        with self._lock:
            self.seen += 1
            n = self.seen
            if knobs.hang_every is not None and n % knobs.hang_every == 0:
                return True, None
            if knobs.fail_every is not None:
                hit = n % knobs.fail_every == 0
            elif knobs.fail_rate > 0:
                hit = self._rng.random() < knobs.fail_rate
            else:
                hit = knobs.fail_status is not None
            if not hit or 0 <= knobs.fail_times <= self.failed:
                return False, None
            self.failed += 1
            return False, knobs.fail_status or 500

    async def hang(self) -> None:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._hangs.add(fut)
        try:
            await fut
        finally:
            self._hangs.discard(fut)

    def release_hangs(self) -> None:
        for fut in list(self._hangs):
            fut.cancel()


@dataclass(slots=True)
class StreamPlan:
    """A stream split for pacing/cutting: ``head``, one entry per content chunk, ``tail``.

    ``error`` is the provider's in-stream error event (used by ``midstream_error``).
    """

    head: bytes
    chunks: list[bytes]
    tail: bytes
    error: bytes


# ------------------------------------------------------------------------------------------
# Provider base
# ------------------------------------------------------------------------------------------


class Provider(ABC):
    name: ClassVar[str]
    #: path appended to ``http://host:port`` to form the SDK base URL
    base_path: ClassVar[str] = ""
    #: DeepSeek-style keep-alive default
    keepalive_default: ClassVar[bool] = False
    #: the channel key a signing emulator checks when ``--api-key`` is not given (None: it
    #: accepts any key); ``relaygate emulator`` prints it
    default_key: ClassVar[str | None] = None

    def __init__(self, core: Core) -> None:
        self.core = core
        self.stats = core.stats

    # -- to implement ---------------------------------------------------------------------
    @abstractmethod
    def add_routes(self, app: web.Application) -> None: ...

    @abstractmethod
    def error(
        self, status: int, message: str | None = None, *, param: str | None = None
    ) -> web.Response:
        """The provider's own error response for ``status``."""

    @abstractmethod
    def check_request(self, request: web.Request, knobs: Knobs) -> None:
        """Route-level checks and auth; raise ``EarlyResponse`` to refuse."""

    @abstractmethod
    def invalid_json(self) -> web.Response: ...

    @abstractmethod
    async def not_found(self, request: web.Request, knobs: Knobs, body: Any) -> web.Response: ...

    # -- shared pipeline ------------------------------------------------------------------
    def invalid_form(self, bad: BadBody) -> web.Response:
        """The answer to a multipart body that cannot be read (``emulator/bodies.py``)."""
        return self.error(bad.status, bad.message)

    def api(self, op: Op, *, checks: bool = True, multipart: bool = False) -> Handler:
        """Wrap an endpoint: stats, body parsing, recording, auth, early errors.

        ``multipart``: the body is a multipart form, handed to ``op`` as a ``bodies.Form``.
        """
        core = self.core
        stats = self.stats
        read_body = read_form if multipart else read_json

        async def handler(request: web.Request) -> web.StreamResponse:
            stats._request_started()
            knobs = core.knobs
            try:
                body: Any = await read_body(request)
                stats._record(
                    RecordedRequest(
                        request.method,
                        request.path,
                        request.query,
                        request.headers,
                        recorded_body(body),
                    )
                )
                try:
                    if checks:
                        self.check_request(request, knobs)
                        if isinstance(body, BadBody):
                            bad = self.invalid_form(body) if multipart else self.invalid_json()
                            raise EarlyResponse(bad)
                    return await op(request, knobs, body)
                except EarlyResponse as early:
                    stats._bump("errors")
                    if knobs.latency_ms:
                        await asyncio.sleep(knobs.latency_ms / 1000)
                    return early.response
            except asyncio.CancelledError:
                if not core.stopping and not request.get(_STREAMING):
                    stats._bump("aborted")
                raise
            finally:
                stats._request_finished()

        return handler

    async def gate(self, knobs: Knobs, model: str) -> str | None:
        """Model-name triggers, injected failures and hangs.

        Returns a stream trigger (``"midstream"``/``"cut"``) or None; raises ``EarlyResponse``.
        """
        if model.startswith(("error-", "hang")):
            m = _TRIGGER.match(model)
            if m:
                status = int(m.group(1))
                if 400 <= status <= 599:
                    raise EarlyResponse(self._with_retry_after(self.error(status), knobs))
            elif model == "error-midstream":
                return "midstream"
            elif model == "error-cut":
                return "cut"
            elif model == "hang":
                await self.core.hang()
        if knobs.hang:
            await self.core.hang()
        hang, fail_status = self.core.draw(knobs)
        if hang:
            await self.core.hang()
        if fail_status is not None:
            raise EarlyResponse(self._with_retry_after(self.error(fail_status), knobs))
        return None

    @staticmethod
    def _with_retry_after(resp: web.Response, knobs: Knobs) -> web.Response:
        if knobs.retry_after is not None:
            resp.headers["retry-after"] = str(knobs.retry_after)
        return resp

    def _lost(self, undo: str | None) -> None:
        if undo is not None:
            self.stats._bump(undo, -1)
        self.stats._bump("disconnected")

    def keepalive(self, knobs: Knobs) -> bool:
        return self.keepalive_default if knobs.keepalive is None else knobs.keepalive

    @staticmethod
    async def delay(knobs: Knobs, *, first_token: bool = False) -> None:
        """``latency_ms`` (plus ``first_token_ms`` for a non-streamed answer)."""
        ms = knobs.latency_ms + knobs.first_token_ms if first_token else knobs.latency_ms
        if ms:
            await asyncio.sleep(ms / 1000)

    @staticmethod
    def json_response(
        payload: Any, status: int = 200, headers: Mapping[str, str] | None = None
    ) -> web.Response:
        hdrs = {"Content-Type": JSON_CT}
        if headers:
            hdrs.update(headers)
        return web.Response(body=orjson.dumps(payload), status=status, headers=hdrs)

    async def send_json(
        self,
        request: web.Request,
        knobs: Knobs,
        payload: Any,
        headers: Mapping[str, str] | None = None,
    ) -> web.StreamResponse:
        """A successful non-stream JSON answer, after ``latency_ms``.

        With keep-alive (DeepSeek) the headers go out first, then blank lines, then the body.
        """
        if not self.keepalive(knobs):
            await self.delay(knobs, first_token=True)
            return self.json_response(payload, headers=headers)
        hdrs = {"Content-Type": JSON_CT}
        if headers:
            hdrs.update(headers)
        resp = _CoalescedResponse(status=200, headers=hdrs)
        await resp.prepare(request)
        await resp.write(b"\n")
        await self.delay(knobs, first_token=True)
        await resp.write_eof(b"\n" + orjson.dumps(payload))
        return resp

    async def send_stream(
        self,
        request: web.Request,
        knobs: Knobs,
        plan: StreamPlan,
        trigger: str | None,
        headers: Mapping[str, str] | None = None,
    ) -> web.StreamResponse:
        """Write a planned SSE stream applying latency, pacing, keep-alive, cut and errors."""
        stats = self.stats
        await self.delay(knobs)
        hdrs = {"Content-Type": SSE_CT, "Cache-Control": "no-cache"}
        if headers:
            hdrs.update(headers)
        resp = _CoalescedResponse(status=200, headers=hdrs)

        chunks = plan.chunks
        cut = 1 if trigger == "cut" else knobs.cut_after
        interval = knobs.chunk_interval_ms / 1000
        first = knobs.first_token_ms / 1000
        # (bytes, pause before them in seconds)
        segments: list[tuple[bytes, float]] = [(plan.head, 0.0)]
        if trigger == "midstream" or knobs.midstream_error:
            segments += [(c, first) for c in chunks[:1]]
            segments.append((plan.error, interval))
            ending = "error"
        else:
            sent = chunks if cut is None else chunks[:cut]
            segments += [(c, interval if i else first) for i, c in enumerate(sent)]
            if cut is None:
                segments.append((plan.tail, 0.0))
                ending = "done"
            else:
                ending = "cut"
        ka = KEEPALIVE_COMMENT if self.keepalive(knobs) else b""
        # one write per pause: what follows without a pause goes out with what precedes it
        writes: list[tuple[bytes, float]] = []
        parts: list[bytes] = []
        wait = 0.0
        for seg, pause in segments:
            if pause > 0 and parts:
                writes.append((b"".join(parts), wait))
                parts, wait = [], pause
            parts.append(ka + seg if ka else seg)
        writes.append((b"".join(parts), wait))

        request[_STREAMING] = True
        stats._bump("streams_started")
        # Counted *before* the last bytes leave, so a client that has read the whole stream
        # always sees the final counters; undone if that write fails.
        final_counter = {"done": "streams_completed", "error": "errors"}.get(ending)
        counted = False
        try:
            await resp.prepare(request)  # the headers go out with the first write
            last = len(writes) - 1
            for i, (data, pause) in enumerate(writes):
                if pause:
                    await asyncio.sleep(pause)
                if i < last:
                    await resp.write(data)
                elif final_counter is None:  # cut
                    await resp.write(data)
                    stats._bump("streams_cut")
                    transport = request.transport
                    if transport is not None:
                        transport.close()  # flushes what was written, never the last chunk
                else:
                    stats._bump(final_counter)
                    counted = True
                    await resp.write_eof(data)
        except ConnectionResetError:
            self._lost(final_counter if counted else None)
        except asyncio.CancelledError:
            if not self.core.stopping:
                self._lost(final_counter if counted else None)
            raise
        return resp
