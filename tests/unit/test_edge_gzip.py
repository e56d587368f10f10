"""edge/gzip.py: Accept-Encoding parsing and the gzip send wrapper, against a recording
ASGI send."""

from __future__ import annotations

import gzip
import json
import os
from typing import Any

import pytest

from relaygate.asgi import send_json
from relaygate.edge.gzip import MIN_SIZE, THREAD_SIZE, GzipSend, accepts_gzip, gzip_send


class Recorder:
    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []

    async def __call__(self, message: Any) -> None:
        self.messages.append(message)

    def headers(self) -> dict[bytes, bytes]:
        return dict(self.messages[0]["headers"])

    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.messages[1:])


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (b"gzip", True),
        (b"gzip, deflate, br, zstd", True),
        (b"GZip", True),
        (b"deflate, gzip;q=0.5", True),
        (b"x-gzip", True),
        (b"*", True),
        (b"identity", False),
        (b"br, deflate", False),
        (b"gzip;q=0", False),
        (b"gzip; q=0.000", False),
        (b"*;q=0", False),
        (b"*, gzip;q=0", False),
        (b"gzip;q=0, *", False),
        (b"gzip;q=bogus", False),
        (b"", False),
    ],
)
def test_accepts_gzip(value: bytes, expected: bool) -> None:
    assert accepts_gzip(value) is expected


def test_gzip_send_wraps_only_when_accepted() -> None:
    rec = Recorder()
    assert gzip_send(rec, {}) is rec
    assert gzip_send(rec, {b"accept-encoding": b"br"}) is rec
    assert isinstance(gzip_send(rec, {b"accept-encoding": b"gzip"}), GzipSend)


def payload(size: int) -> bytes:
    items = [{"index": i, "embedding": [i / 7] * 8} for i in range(size // 60 + 1)]
    return json.dumps({"data": items}).encode()


async def test_large_json_is_compressed_with_correct_headers() -> None:
    rec = Recorder()
    body = payload(20_000)
    await send_json(GzipSend(rec), 200, body, "rid", [(b"vary", b"origin")])
    headers = rec.headers()
    assert rec.messages[0]["status"] == 200
    assert headers[b"content-encoding"] == b"gzip"
    assert headers[b"vary"] == b"origin, accept-encoding"
    assert headers[b"content-type"] == b"application/json"
    assert headers[b"x-request-id"] == b"rid"
    assert int(headers[b"content-length"]) == len(rec.body()) < len(body) // 2
    assert [k for k, _ in rec.messages[0]["headers"]].count(b"content-length") == 1
    assert gzip.decompress(rec.body()) == body
    assert len(rec.messages) == 2 and not rec.messages[1].get("more_body", False)


async def test_body_over_thread_size_is_compressed_too() -> None:
    rec = Recorder()
    body = payload(THREAD_SIZE * 3)
    await send_json(GzipSend(rec), 200, body, "rid")
    assert gzip.decompress(rec.body()) == body
    assert int(rec.headers()[b"content-length"]) == len(rec.body())


async def test_body_in_parts_is_compressed_whole() -> None:
    rec = Recorder()
    body = payload(5000)
    send = GzipSend(rec)
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", b"%d" % len(body)),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body[:100], "more_body": True})
    await send({"type": "http.response.body", "body": body[100:], "more_body": False})
    assert gzip.decompress(rec.body()) == body
    assert len(rec.messages) == 2


async def test_small_answer_passes_untouched() -> None:
    rec = Recorder()
    body = b'{"error":{"message":"no"}}'
    assert len(body) < MIN_SIZE
    await send_json(GzipSend(rec), 403, body, "rid")
    assert b"content-encoding" not in rec.headers()
    assert rec.body() == body
    assert rec.headers()[b"content-length"] == str(len(body)).encode()


async def test_incompressible_answer_is_sent_as_is() -> None:
    rec = Recorder()
    body = os.urandom(4096)
    await send_json(GzipSend(rec), 200, body, "rid")
    assert b"content-encoding" not in rec.headers()
    assert rec.body() == body


async def test_stream_passes_through_and_later_sends_go_straight_through() -> None:
    rec = Recorder()
    send = GzipSend(rec)
    start = {
        "type": "http.response.start",
        "status": 200,
        "headers": [(b"content-type", b"text/event-stream; charset=utf-8")],
    }
    await send(start)
    chunk = {
        "type": "http.response.body",
        "body": b"data: " + b"x" * 5000 + b"\n\n",
        "more_body": True,
    }
    # once decided, a send is the inner send's own awaitable: no extra coroutine per chunk
    awaitable = send(chunk)
    assert awaitable.__qualname__ == "Recorder.__call__"  # type: ignore[attr-defined]
    await awaitable
    await send({"type": "http.response.body", "body": b"data: [DONE]\n\n"})
    assert rec.messages[0] is start
    assert b"content-encoding" not in rec.headers()
    assert rec.body().endswith(b"data: [DONE]\n\n")


async def test_answer_without_content_length_passes() -> None:
    rec = Recorder()
    send = GzipSend(rec)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"x" * 5000})
    assert rec.body() == b"x" * 5000 and b"content-encoding" not in rec.headers()


async def test_already_encoded_answer_passes() -> None:
    rec = Recorder()
    body = gzip.compress(payload(5000))
    send = GzipSend(rec)
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-encoding", b"gzip"), (b"content-length", b"%d" % len(body))],
        }
    )
    await send({"type": "http.response.body", "body": body})
    assert rec.body() == body
    assert rec.headers()[b"content-encoding"] == b"gzip"
