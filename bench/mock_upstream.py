"""A fast OpenAI-compatible mock upstream for benchmarks.

Serves ``POST /v1/chat/completions`` (non-stream and SSE stream), ``GET /v1/models`` and
``GET /health`` on raw asyncio + httptools (+ uvloop when available), so it stays far
faster than any gateway put in front of it.

Knobs (CLI):
  --latency-ms / --jitter-ms     time before the response (or the first stream chunk)
  --chunks / --chunk-interval-ms number of content chunks in a stream and the pacing between them
  --fail-rate / --fail-status    fraction of requests answered with an error status (429/5xx)
  --drop-rate                    fraction of streams cut mid-way (connection closed)
  --hang-rate                    fraction of requests never answered (client/gateway timeout)
  --workers                      processes sharing the port (SO_REUSEPORT)

A usage chunk is sent at the end of a stream when the request has
``"stream_options": {"include_usage": true}``; non-stream responses always carry usage.

Run: ``python bench/mock_upstream.py --port 9100 --latency-ms 0 --chunks 10``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import signal
import socket
import sys
from dataclasses import dataclass, field
from typing import Any, cast

import httptools
import orjson

CREATED = 1_700_000_000
_CACHE_MAX = 4096


@dataclass(frozen=True)
class MockConfig:
    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    chunks: int = 10
    chunk_interval_ms: float = 0.0
    fail_rate: float = 0.0
    fail_status: tuple[int, ...] = (500,)
    drop_rate: float = 0.0
    hang_rate: float = 0.0
    seed: int | None = None


@dataclass
class _Stats:
    requests: int = 0
    streams: int = 0
    failures: int = 0
    cache: dict[tuple[Any, ...], Any] = field(default_factory=dict)


_STATUS_TEXT = {
    200: b"OK",
    400: b"Bad Request",
    404: b"Not Found",
    405: b"Method Not Allowed",
    429: b"Too Many Requests",
    500: b"Internal Server Error",
    502: b"Bad Gateway",
    503: b"Service Unavailable",
    504: b"Gateway Timeout",
}


def _response(
    status: int, body: bytes, content_type: bytes = b"application/json", extra: bytes = b""
) -> bytes:
    return b"".join(
        (
            b"HTTP/1.1 %d %s\r\n" % (status, _STATUS_TEXT.get(status, b"Status")),
            b"content-type: ",
            content_type,
            b"\r\ncontent-length: %d\r\n" % len(body),
            extra,
            b"\r\n",
            body,
        )
    )


def _error_body(status: int, message: str) -> bytes:
    kind = {
        400: "invalid_request_error",
        404: "not_found_error",
        429: "rate_limit_error",
    }.get(status, "server_error")
    return orjson.dumps({"error": {"message": message, "type": kind, "param": None, "code": None}})


_STREAM_HEAD = (
    b"HTTP/1.1 200 OK\r\n"
    b"content-type: text/event-stream\r\n"
    b"cache-control: no-cache\r\n"
    b"transfer-encoding: chunked\r\n"
    b"\r\n"
)
_STREAM_END = b"0\r\n\r\n"
_HEALTH = _response(200, b'{"status":"ok"}')
_NOT_FOUND = _response(404, _error_body(404, "not found"))
_BAD_REQUEST = _response(400, _error_body(400, "bad request"))


def _http_chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def _sse(obj: Any) -> bytes:
    return _http_chunk(b"data: " + orjson.dumps(obj) + b"\n\n")


def _token(i: int) -> str:
    return f"tok{i} "


def build_completion(model: str, chunks: int, prompt_tokens: int) -> bytes:
    content = "".join(_token(i) for i in range(max(chunks, 1)))
    completion_tokens = max(chunks, 1)
    body = {
        "id": "chatcmpl-mock",
        "object": "chat.completion",
        "created": CREATED,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content, "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
        "system_fingerprint": "fp_mock",
    }
    return _response(200, orjson.dumps(body))


def build_stream_events(
    model: str, chunks: int, prompt_tokens: int, include_usage: bool
) -> list[bytes]:
    """Return the HTTP-chunked SSE events of one stream (head and terminator not included)."""

    def chunk(delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
        obj: dict[str, Any] = {
            "id": "chatcmpl-mock",
            "object": "chat.completion.chunk",
            "created": CREATED,
            "model": model,
            "system_fingerprint": "fp_mock",
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        if include_usage:
            obj["usage"] = None
        return obj

    events = [_sse(chunk({"role": "assistant", "content": ""}, None))]
    events.extend(_sse(chunk({"content": _token(i)}, None)) for i in range(chunks))
    events.append(_sse(chunk({}, "stop")))
    if include_usage:
        completion_tokens = max(chunks, 1)
        events.append(
            _sse(
                {
                    "id": "chatcmpl-mock",
                    "object": "chat.completion.chunk",
                    "created": CREATED,
                    "model": model,
                    "system_fingerprint": "fp_mock",
                    "choices": [],
                    "usage": {
                        "prompt_tokens": prompt_tokens,
                        "completion_tokens": completion_tokens,
                        "total_tokens": prompt_tokens + completion_tokens,
                    },
                }
            )
        )
    events.append(_http_chunk(b"data: [DONE]\n\n"))
    return events


class _Request:
    __slots__ = ("body", "keep_alive", "method", "url")

    def __init__(self) -> None:
        self.url = b""
        self.body: list[bytes] = []
        self.method = b""
        self.keep_alive = True


class MockProtocol(asyncio.Protocol):
    """One HTTP/1.1 connection. Requests on a connection are answered in order."""

    def __init__(self, cfg: MockConfig, stats: _Stats, rng: random.Random) -> None:
        self.cfg = cfg
        self.stats = stats
        self.rng = rng
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.current = _Request()
        self.queue: list[_Request] = []
        self.busy = False
        self.closed = False
        self.timers: set[asyncio.TimerHandle] = set()

    # -- asyncio.Protocol -------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        for t in self.timers:
            t.cancel()
        self.timers.clear()

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._write_close(_BAD_REQUEST)
        except httptools.HttpParserError:
            self._write_close(_BAD_REQUEST)

    # -- httptools callbacks ----------------------------------------------------------
    def on_message_begin(self) -> None:
        self.current = _Request()

    def on_url(self, url: bytes) -> None:
        self.current.url += url

    def on_body(self, body: bytes) -> None:
        self.current.body.append(body)

    def on_message_complete(self) -> None:
        req = self.current
        req.method = self.parser.get_method()
        req.keep_alive = self.parser.should_keep_alive()
        if self.busy:
            self.queue.append(req)
        else:
            self._handle(req)

    # -- request handling -------------------------------------------------------------
    def _later(self, delay: float, fn: Any, *args: Any) -> None:
        handle: asyncio.TimerHandle | None = None

        def run() -> None:
            if handle is not None:
                self.timers.discard(handle)
            if not self.closed:
                fn(*args)

        handle = self.loop.call_later(delay, run)
        self.timers.add(handle)

    def _done(self, keep_alive: bool) -> None:
        if not keep_alive:
            self._close()
            return
        self.busy = False
        if self.queue:
            self._handle(self.queue.pop(0))

    def _write(self, data: bytes) -> None:
        if self.transport is not None and not self.closed:
            self.transport.write(data)

    def _write_close(self, data: bytes) -> None:
        self._write(data)
        self._close()

    def _close(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.close()
        self.closed = True

    def _handle(self, req: _Request) -> None:
        self.busy = True
        path = req.url.split(b"?", 1)[0]
        if req.method == b"POST" and path in (b"/v1/chat/completions", b"/chat/completions"):
            self._chat(req)
            return
        if req.method == b"GET" and path in (b"/health", b"/healthz", b"/readyz"):
            self._write(_HEALTH)
        elif req.method == b"GET" and path in (b"/v1/models", b"/models"):
            self._write(
                _response(
                    200,
                    orjson.dumps(
                        {
                            "object": "list",
                            "data": [
                                {
                                    "id": "gpt-4o-mini",
                                    "object": "model",
                                    "created": CREATED,
                                    "owned_by": "mock",
                                }
                            ],
                        }
                    ),
                )
            )
        else:
            self._write(_NOT_FOUND)
        self._done(req.keep_alive)

    def _chat(self, req: _Request) -> None:
        cfg = self.cfg
        self.stats.requests += 1
        raw = b"".join(req.body)
        try:
            payload = orjson.loads(raw)
            if not isinstance(payload, dict):
                raise ValueError("body is not an object")
        except (orjson.JSONDecodeError, ValueError):
            self._write(_response(400, _error_body(400, "invalid JSON body")))
            self._done(req.keep_alive)
            return
        model = payload.get("model")
        if not isinstance(model, str):
            model = "gpt-4o-mini"
        stream = payload.get("stream") is True
        opts = payload.get("stream_options")
        include_usage = isinstance(opts, dict) and opts.get("include_usage") is True
        prompt_tokens = max(1, len(raw) // 4)

        rng = self.rng
        if cfg.hang_rate and rng.random() < cfg.hang_rate:
            return  # never answer; the connection stays busy until the peer gives up
        fail_status = 0
        if cfg.fail_rate and rng.random() < cfg.fail_rate:
            fail_status = rng.choice(cfg.fail_status)
        delay = cfg.latency_ms
        if cfg.jitter_ms:
            delay = max(0.0, delay + rng.uniform(-cfg.jitter_ms, cfg.jitter_ms))
        delay /= 1000.0

        if fail_status:
            self.stats.failures += 1
            extra = b"retry-after: 1\r\n" if fail_status == 429 else b""
            resp = _response(
                fail_status, _error_body(fail_status, "mock injected failure"), extra=extra
            )
            if delay > 0:
                self._later(delay, self._send_and_done, resp, req.keep_alive)
            else:
                self._send_and_done(resp, req.keep_alive)
            return

        cache = self.stats.cache
        if len(cache) > _CACHE_MAX:
            cache.clear()
        if not stream:
            key: tuple[Any, ...] = ("c", model, prompt_tokens)
            cached = cache.get(key)
            if cached is None:
                cached = cache[key] = build_completion(model, cfg.chunks, prompt_tokens)
            if delay > 0:
                self._later(delay, self._send_and_done, cached, req.keep_alive)
            else:
                self._send_and_done(cached, req.keep_alive)
            return

        self.stats.streams += 1
        key = ("s", model, prompt_tokens, include_usage)
        events = cache.get(key)
        if events is None:
            events = cache[key] = build_stream_events(
                model, cfg.chunks, prompt_tokens, include_usage
            )
        drop_at = -1
        if cfg.drop_rate and rng.random() < cfg.drop_rate:
            drop_at = max(1, len(events) // 2)
        if cfg.chunk_interval_ms <= 0 and drop_at < 0:
            data = _STREAM_HEAD + b"".join(events) + _STREAM_END
            if delay > 0:
                self._later(delay, self._send_and_done, data, req.keep_alive)
            else:
                self._send_and_done(data, req.keep_alive)
            return
        if delay > 0:
            self._later(delay, self._stream_step, events, 0, drop_at, req.keep_alive, True)
        else:
            self._stream_step(events, 0, drop_at, req.keep_alive, True)

    def _send_and_done(self, data: bytes, keep_alive: bool) -> None:
        self._write(data)
        self._done(keep_alive)

    def _stream_step(
        self, events: list[bytes], i: int, drop_at: int, keep_alive: bool, first: bool
    ) -> None:
        if i == drop_at:
            self._close()
            return
        data = events[i]
        if first:
            data = _STREAM_HEAD + data
        i += 1
        if i >= len(events):
            self._write(data + _STREAM_END)
            self._done(keep_alive)
            return
        self._write(data)
        interval = self.cfg.chunk_interval_ms / 1000.0
        if interval > 0:
            self._later(interval, self._stream_step, events, i, drop_at, keep_alive, False)
        else:
            self._stream_step(events, i, drop_at, keep_alive, False)


def _make_socket(host: str, port: int, reuse_port: bool) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(4096)
    sock.setblocking(False)
    return sock


async def serve(cfg: MockConfig, sock: socket.socket) -> None:
    loop = asyncio.get_running_loop()
    stats = _Stats()
    rng = random.Random(cfg.seed)
    server = await loop.create_server(
        lambda: MockProtocol(cfg, stats, rng), sock=sock, backlog=4096
    )
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


def _run_worker(cfg: MockConfig, sock: socket.socket) -> None:
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover - uvloop is optional
        pass
    asyncio.run(serve(cfg, sock))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=9100)
    p.add_argument("--latency-ms", type=float, default=0.0)
    p.add_argument("--jitter-ms", type=float, default=0.0)
    p.add_argument("--chunks", type=int, default=10, help="content chunks per stream")
    p.add_argument("--chunk-interval-ms", type=float, default=0.0)
    p.add_argument("--fail-rate", type=float, default=0.0)
    p.add_argument(
        "--fail-status",
        default="500",
        help="comma-separated statuses to pick from on failure, e.g. 429,500,503",
    )
    p.add_argument("--drop-rate", type=float, default=0.0, help="fraction of streams cut mid-way")
    p.add_argument(
        "--hang-rate", type=float, default=0.0, help="fraction of requests never answered"
    )
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--seed", type=int, default=None)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    a = parse_args(argv)
    cfg = MockConfig(
        latency_ms=a.latency_ms,
        jitter_ms=a.jitter_ms,
        chunks=a.chunks,
        chunk_interval_ms=a.chunk_interval_ms,
        fail_rate=a.fail_rate,
        fail_status=tuple(int(s) for s in a.fail_status.split(",") if s.strip()),
        drop_rate=a.drop_rate,
        hang_rate=a.hang_rate,
        seed=a.seed,
    )
    workers = max(1, a.workers)
    if workers == 1:
        sock = _make_socket(a.host, a.port, reuse_port=False)
        print(f"mock upstream listening on http://{a.host}:{a.port}", flush=True)
        _run_worker(cfg, sock)
        return
    children: list[int] = []
    for _ in range(workers):
        sock = _make_socket(a.host, a.port, reuse_port=True)
        pid = os.fork()
        if pid == 0:
            _run_worker(cfg, sock)
            os._exit(0)
        sock.close()
        children.append(pid)
    print(f"mock upstream listening on http://{a.host}:{a.port} ({workers} workers)", flush=True)

    def forward(signum: int, _frame: Any) -> None:
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    for pid in children:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
    sys.exit(0)


if __name__ == "__main__":
    main()
