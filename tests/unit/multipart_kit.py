"""Helpers for the multipart tests (test_multipart*.py): bodies written by hand, chunked
at random, fed through a plain ASGI receive callable."""

from __future__ import annotations

import asyncio
import random
import tempfile
from pathlib import Path
from typing import Any

import pytest

from relaygate.asgi import Request
from relaygate.relay.multipart import Form, read_form

__all__ = [
    "BOUNDARY",
    "CTYPE",
    "LIMIT",
    "Spec",
    "build",
    "contents",
    "encoded",
    "make_request",
    "parse",
    "redirect_spools",
    "refused",
    "split",
    "spooled",
]

BOUNDARY = "----rgTestBoundary7MA4YWxkTrZu0gW"
CTYPE = f"multipart/form-data; boundary={BOUNDARY}".encode()
LIMIT = 1024 * 1024 * 8

#: (name, filename or None, content type or "", bytes)
Spec = tuple[str, str | None, str, bytes]


def spooled(d: Path) -> list[Path]:
    return sorted(d.rglob("relaygate-upload-*"))


def build(specs: list[Spec], boundary: str = BOUNDARY) -> bytes:
    """A multipart body written by hand (independent of ``Form.encode``)."""
    out = bytearray()
    for name, filename, ctype, data in specs:
        out += f"--{boundary}\r\n".encode()
        disp = f'Content-Disposition: form-data; name="{name}"'
        if filename is not None:
            disp += f'; filename="{filename}"'
        out += disp.encode() + b"\r\n"
        if ctype:
            out += f"Content-Type: {ctype}\r\n".encode()
        out += b"\r\n" + data + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return bytes(out)


def split(body: bytes, rng: random.Random, *, max_size: int = 64) -> list[bytes]:
    """``body`` in random pieces, many of one byte."""
    pieces, i = [], 0
    while i < len(body):
        n = 1 if rng.random() < 0.3 else rng.randint(1, max_size)
        pieces.append(body[i : i + n])
        i += n
    return pieces


def make_request(
    chunks: list[bytes],
    *,
    content_type: bytes | None = CTYPE,
    length: int | None = None,
    headers: dict[bytes, bytes] | None = None,
    then: str = "end",  # after the chunks: "end" (last is final), "stall", "disconnect"
) -> Request:
    items = list(chunks)

    async def receive() -> dict[str, Any]:
        if not items:
            if then == "disconnect":
                return {"type": "http.disconnect"}
            await asyncio.Event().wait()  # "stall": the client sends nothing more
        chunk = items.pop(0)
        more = bool(items) or then != "end"
        return {"type": "http.request", "body": chunk, "more_body": more}

    async def send(message: Any) -> None:
        raise AssertionError("read_form sends nothing")

    hdrs = dict(headers or {})
    if content_type is not None:
        hdrs[b"content-type"] = content_type
    if length is not None:
        hdrs[b"content-length"] = str(length).encode()
    scope = {"type": "http", "method": "POST", "path": "/v1/files", "headers": list(hdrs.items())}
    return Request(scope, receive, send, False)  # type: ignore[arg-type]


async def parse(body: bytes, rng: random.Random | None = None, **kw: Any) -> Form:
    chunks = split(body, rng) if rng is not None else [body]
    return await read_form(make_request(chunks, **kw), LIMIT, 5.0)


def contents(form: Form) -> list[Spec]:
    out: list[Spec] = []
    for p in form.parts:
        data = p.value if p.path is None else Path(p.path).read_bytes()
        assert p.size == len(data)
        out.append((p.name, p.filename, p.content_type, data))
    return out


async def encoded(form: Form) -> tuple[str, int, bytes]:
    ctype, length, factory = form.encode()
    data = b"".join([c async for c in factory()])
    return ctype, length, data


async def refused(
    exc: type[Exception],
    req: Request,
    spool: Path,
    *,
    limit: int = LIMIT,
    body_timeout: float = 5.0,
) -> Any:
    with pytest.raises(exc) as info:
        await read_form(req, limit, body_timeout)
    assert spooled(spool) == [], "a refused upload left a spool file"
    return info.value


def redirect_spools(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Spool files go under a directory of the test's own (other tests run beside it)."""
    d = tmp_path / "spool"
    d.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(d))
    return d
