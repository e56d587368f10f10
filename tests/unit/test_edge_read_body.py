"""asgi.read_body: gzip request bodies, the limit on the decompressed size, the idle body
timeout, refused content codings. Driven through a plain ASGI receive callable."""

from __future__ import annotations

import asyncio
import gzip
import time
import zlib
from collections.abc import Iterable
from typing import Any

import pytest

from relaygate.asgi import (
    BODY_RECEIVED,
    BodyLimitExceeded,
    BodyReadTimeout,
    InvalidCompressedBody,
    Request,
    UnsupportedContentEncoding,
    read_body,
)


def make_request(
    parts: Iterable[bytes | float],
    headers: dict[bytes, bytes] | None = None,
    *,
    received: bool = False,
    stall: bool = False,
) -> Request:
    """A request whose body arrives as ``parts`` (a float is a pause in seconds); with
    ``stall`` the client sends nothing more after the parts."""
    items = list(parts)
    chunks = [p for p in items if isinstance(p, bytes)]

    async def receive() -> dict[str, Any]:
        if items and not isinstance(items[0], bytes):  # a pause before the next piece
            await asyncio.sleep(items.pop(0))
        if not items:
            await asyncio.Event().wait()  # the client sends nothing more
        chunk = items.pop(0)
        assert isinstance(chunk, bytes)
        more = stall or any(isinstance(p, bytes) for p in items)
        return {"type": "http.request", "body": chunk, "more_body": more}

    async def send(message: Any) -> None:
        raise AssertionError("read_body sends nothing")

    scope: dict[str, Any] = {
        "type": "http",
        "method": "POST",
        "path": "/v1/chat/completions",
        "headers": list((headers or {}).items()),
        "client": ("127.0.0.1", 1),
    }
    if received:
        scope[BODY_RECEIVED] = True
    assert chunks or stall
    return Request(scope, receive, send, False)


GZ = {b"content-encoding": b"gzip"}


async def test_plain_body() -> None:
    assert await read_body(make_request([b'{"a":', b"1}"]), 100) == b'{"a":1}'


async def test_gzip_body_is_decompressed() -> None:
    raw = b'{"model":"m","messages":[]}' * 100
    packed = gzip.compress(raw)
    req = make_request([packed[:50], packed[50:]], GZ)
    assert await read_body(req, 10_000) == raw


@pytest.mark.parametrize("coding", [b"GZIP", b" gzip ", b"x-gzip"])
async def test_gzip_spellings(coding: bytes) -> None:
    req = make_request([gzip.compress(b"{}")], {b"content-encoding": coding})
    assert await read_body(req, 100) == b"{}"


async def test_identity_is_accepted_as_is() -> None:
    req = make_request([b"{}"], {b"content-encoding": b"identity"})
    assert await read_body(req, 100) == b"{}"


async def test_several_gzip_members_are_joined() -> None:
    req = make_request([gzip.compress(b'{"a":') + gzip.compress(b"1}")], GZ)
    assert await read_body(req, 100) == b'{"a":1}'


@pytest.mark.parametrize("coding", [b"br", b"deflate", b"gzip, gzip", b"zstd"])
async def test_other_codings_are_refused(coding: bytes) -> None:
    req = make_request([b"{}"], {b"content-encoding": coding})
    with pytest.raises(UnsupportedContentEncoding) as info:
        await read_body(req, 100)
    assert coding.decode() in str(info.value) and "not supported" in str(info.value)


async def test_decompressed_size_is_limited() -> None:
    limit = 1000
    exact = gzip.compress(b"a" * limit)
    assert len(await read_body(make_request([exact], GZ), limit)) == limit
    with pytest.raises(BodyLimitExceeded):
        await read_body(make_request([gzip.compress(b"a" * (limit + 1))], GZ), limit)


async def test_gzip_bomb_stops_at_the_limit() -> None:
    """256 MiB of zeros in ~250 KB of gzip: refused after inflating at most limit + 1 bytes,
    quickly and without building the 256 MiB."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = bytes(1 << 20)
    bomb = b"".join(packer.compress(block) for _ in range(256)) + packer.flush()
    assert len(bomb) < 512 * 1024
    t0 = time.perf_counter()
    with pytest.raises(BodyLimitExceeded):
        await read_body(make_request([bomb], GZ), 4 << 20)
    assert time.perf_counter() - t0 < 0.5


async def test_output_on_step_boundaries() -> None:
    """Bodies of exactly one and two inflate steps (1 MiB) decompress whole."""
    for size in (1 << 20, 2 << 20, (1 << 20) + 1):
        raw = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
        got = await read_body(make_request([gzip.compress(raw)], GZ), 3 << 20)
        assert got == raw


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (gzip.compress(b'{"a":1}' * 50)[:-10], "truncated"),
        (b"not gzip at all", "corrupt"),
        (gzip.compress(b"{}") + b"trailing junk", "corrupt"),
    ],
)
async def test_bad_gzip_is_refused(body: bytes, words: str) -> None:
    with pytest.raises(InvalidCompressedBody) as info:
        await read_body(make_request([body], GZ), 10_000)
    assert words in str(info.value)


async def test_compressed_declared_length_over_limit_is_refused_before_reading() -> None:
    req = make_request([b"x"], {**GZ, b"content-length": b"5000"})
    with pytest.raises(BodyLimitExceeded):
        await read_body(req, 1000)


async def test_stalled_body_times_out() -> None:
    req = make_request([b'{"model":'], stall=True)
    t0 = time.perf_counter()
    with pytest.raises(BodyReadTimeout) as info:
        await read_body(req, 1000, body_timeout=0.2)
    assert 0.15 < time.perf_counter() - t0 < 1.0
    assert info.value.timeout == 0.2
    assert "0.2 seconds" in str(info.value)


async def test_timeout_is_idle_time_between_reads() -> None:
    """Five pieces 0.1 s apart (0.5 s in all) under a 0.25 s timeout: read whole."""
    parts: list[bytes | float] = []
    for piece in (b'{"a"', b":", b"1", b",", b'"b":2}'):
        parts += [0.1, piece]
    got = await read_body(make_request(parts), 1000, body_timeout=0.25)
    assert got == b'{"a":1,"b":2}'


async def test_no_timer_when_the_server_has_the_whole_body() -> None:
    """With BODY_RECEIVED set, read_body sets no timer: a receive slower than the timeout
    (which a server that has the whole body never is) does not time out."""
    req = make_request([0.05, b"{}"], received=True)
    assert await read_body(req, 100, body_timeout=0.01) == b"{}"
    req = make_request([0.05, b"{}"])
    with pytest.raises(BodyReadTimeout):
        await read_body(req, 100, body_timeout=0.01)
