"""A running gateway with two OpenAI emulator channels and two users, and the helpers the
probe tests (``test_surface_probes.py``, ``test_object_probes.py``, ``test_upload_probes.py``)
share: the error-table shape check, raw HTTP for bodies and paths no client library sends,
multipart bodies built by hand, and the gateway's upload spool directory.

The gateway runs with its own ``TMPDIR`` (so its spool is
``<tmp>/relaygate-uploads/<pid>`` and nobody else's), a 3 MiB upload cap (over the 1 MiB text
field limit), a 2 s body timeout and a 2 s first-byte timeout (hung upstreams fail fast).
"""

from __future__ import annotations

import io
import os
import socket
import time
import wave
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
from gateway import Gateway

from relaygate.emulator import EmulatorServer, Knobs
from relaygate.providers.surfaces import SURFACES

__all__ = [
    "BETA",
    "PNG",
    "UPLOAD_CAP",
    "World",
    "assert_error",
    "multipart",
    "raw_http",
    "spool_files",
    "start_world",
    "wav",
]

UPLOAD_CAP = 3 * 1024 * 1024
#: a 1x1 PNG (image edits and variations)
PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00"
    b"\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8N\x00"
    b"\x00\x00\x00IEND\xaeB`\x82"
)
BETA = {"OpenAI-Beta": "assistants=v2"}

MAPPING = {
    "house-instruct": "gpt-3.5-turbo-instruct",
    "house-image": "dall-e-2",
    "house-gptimage": "gpt-image-1",
    "house-whisper": "whisper-1",
    "house-transcribe": "gpt-4o-transcribe",
    "house-tts": "tts-1",
    "house-rerank": "rerank-test",
    "house-moderation": "omni-moderation-latest",
    "ft-base": "gpt-4o-mini-2024-07-18",
    "house-gpt": "gpt-4o-mini",
    "house-video": "sora-2",
}
PRICES = [
    {"model": "house-instruct", "input": "2", "output": "8"},  # CNY per 1M tokens
    {"model": "house-image", "input": "0", "output": "0", "per_image": "0.05"},
    {"model": "house-gptimage", "input": "10", "output": "40"},
    {"model": "house-whisper", "input": "0", "output": "0", "per_second": "0.01"},
    {"model": "house-transcribe", "input": "10", "output": "40"},
    {"model": "house-tts", "input": "0", "output": "0", "per_character": "0.0002"},
    {"model": "house-rerank", "input": "1", "output": "0"},
    {"model": "ft-base", "input": "1", "output": "2", "training": "30"},
    {"model": "house-gpt", "input": "3", "output": "5"},
]


@dataclass
class World:
    gw: Gateway
    emus: list[EmulatorServer]
    tmp: Path  # the gateway's TMPDIR
    key: str  # alice
    key2: str  # bob
    limited: str  # alice's key that may use house-tts only
    uid: int = 0
    cids: list[int] = field(default_factory=list)
    client: httpx.Client = field(default_factory=httpx.Client)  # kept-alive connections

    def url(self, path: str) -> str:
        return self.gw.base_url + path

    def headers(self, key: str | None = None, **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {key or self.key}", **extra}

    def post(self, path: str, key: str | None = None, **kw: Any) -> httpx.Response:
        return self.request("POST", path, key, **kw)

    def request(self, method: str, path: str, key: str | None = None, **kw: Any) -> httpx.Response:
        headers = self.headers(key, **kw.pop("headers", {}))
        timeout = kw.pop("timeout", 20)
        return self.client.request(method, self.url(path), headers=headers, timeout=timeout, **kw)

    def paths(self) -> list[str]:
        """Every path the two upstreams were sent since the last reset."""
        return [r["path"] for e in self.emus for r in e.stats.snapshot()["recorded"]]

    def upload(self, key: str | None = None, name: str = "a.txt", data: bytes = b"hi") -> str:
        r = self.post("/files", key, data={"purpose": "user_data"},
                      files={"file": (name, data, "text/plain")})  # fmt: skip
        assert r.status_code == 200, r.text
        fid: str = r.json()["id"]
        return fid

    def ids(self, collection: str, key: str | None = None) -> list[str]:
        r = self.request("GET", f"/{collection}?limit=100", key, headers=BETA)
        assert r.status_code == 200, r.text
        return [x["id"] for x in r.json()["data"]]

    def log_row(self, request_id: str) -> dict[str, Any]:
        deadline = time.monotonic() + 5
        while True:
            rows = self.gw.admin("GET", f"/logs?request_id={request_id}")["data"]
            if rows or time.monotonic() > deadline:
                assert rows, f"no request log row for {request_id}"
                return rows[0]  # type: ignore[no-any-return]
            time.sleep(0.1)

    def spool(self) -> Path:
        assert self.gw.proc is not None
        return self.tmp / "relaygate-uploads" / str(self.gw.proc.pid)

    def healthy(self) -> None:
        """The gateway still answers a model request and an upload."""
        r = self.post("/moderations", json={"model": "house-moderation", "input": "hi"})
        assert r.status_code == 200, r.text
        self.upload()


def units(row: dict[str, Any]) -> int:
    """A log row's charge in units (10^-6 CNY)."""
    return int(Decimal(row["cost"]) * 1_000_000)


def start_world(root: Path, **env: str) -> Iterator[World]:
    """Start the emulators and the gateway, configure them; stop them afterwards."""
    tmp = root / "tmp"
    tmp.mkdir()
    emus = [
        EmulatorServer("openai", knobs=Knobs(api_key=f"sk-up-{i}", job_seconds=0.3)).start()
        for i in (1, 2)
    ]
    gw = Gateway(
        root / "gw",
        {
            "TMPDIR": str(tmp),
            "RELAYGATE_MAX_UPLOAD_BYTES": str(UPLOAD_CAP),
            "RELAYGATE_BODY_TIMEOUT": "2",
            "RELAYGATE_FIRST_BYTE_TIMEOUT": "2",
            "RELAYGATE_USD_RATE": "7.2",
            **env,
        },
    )
    (root / "gw").mkdir()
    try:
        gw.start()
        cids = [
            gw.create_channel(
                name=f"openai-{i}",
                provider="openai_compat",
                profile="openai",
                base_url=emu.base_url,
                keys=[f"sk-up-{i}"],
                models=list(MAPPING),
                model_mapping=MAPPING,
                priority=10 - i,  # channel 1 first; channel 2 the failover
                config={"surfaces": list(SURFACES)},
            )
            for i, emu in enumerate(emus, 1)
        ]
        for body in PRICES:
            gw.admin("POST", "/prices", {"currency": "CNY", "per": "1m", **body})
        uid = gw.create_user("alice", balance="100")
        key = gw.create_key(uid, name="alice")
        limited = gw.create_key(uid, name="tts-only", models=["house-tts"])
        uid2 = gw.create_user("bob", balance="100")
        key2 = gw.create_key(uid2, name="bob")
        time.sleep(1.2)  # the worker loads the configuration
        world = World(gw, emus, tmp, key, key2, limited, uid, cids)
        with world.client:
            yield world
    finally:
        gw.stop()
        for emu in emus:
            emu.stop()


# ---- checks ------------------------------------------------------------------------------
def assert_error(
    r: httpx.Response | tuple[int, bytes],
    status: int | tuple[int, ...],
    code: str | None = None,
    param: str | None = None,
) -> dict[str, Any]:
    """``r`` is an error in the error table's shape (``{"code", "msg", "error": {message,
    type, param, code}}``) with ``status`` — never a plain-text answer or an internal error."""
    import orjson

    got, raw = (r.status_code, r.content) if isinstance(r, httpx.Response) else r
    wanted = status if isinstance(status, tuple) else (status,)
    assert got in wanted, f"HTTP {got}, wanted {wanted}: {raw[:300]!r}"
    body = orjson.loads(raw)
    assert isinstance(body, dict), raw[:300]
    err = body.get("error")
    assert isinstance(err, dict) and set(err) == {"message", "type", "param", "code"}, body
    assert body.get("code") == got and body.get("msg") == err["message"], body
    assert isinstance(err["message"], str) and err["message"], body
    assert err["code"] != "internal_error", body
    if code is not None:
        assert err["code"] == code, body
    if param is not None:
        assert err["param"] == param, body
    return err


def spool_files(world: World, timeout: float = 3.0) -> list[str]:
    """The gateway's spool files once its requests are over (the spool is removed when a
    request ends, a moment after its answer was sent)."""
    deadline = time.monotonic() + timeout
    while True:
        found = sorted(os.listdir(world.spool())) if world.spool().is_dir() else []
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


# ---- raw HTTP ----------------------------------------------------------------------------
def raw_http(
    world: World,
    method: str,
    path: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    *,
    key: str | None = None,
    timeout: float = 15.0,
) -> tuple[int, bytes]:
    """One HTTP/1.1 exchange over a plain socket: the path and the headers go out exactly
    as given (no normalisation of ``..``, no Content-Length of our own when one is given)."""
    hdrs = {"Host": "gw", "Authorization": f"Bearer {key or world.key}", "Connection": "close"}
    hdrs.update(headers or {})
    if body and not any(k.lower() == "content-length" for k in hdrs):
        hdrs["Content-Length"] = str(len(body))
    head = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in hdrs.items())
    with socket.create_connection(("127.0.0.1", world.gw.port), timeout=timeout) as s:
        s.sendall(head.encode("utf-8") + b"\r\n" + body)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head_raw, _, payload = data.partition(b"\r\n\r\n")
    status = int(head_raw.split(b" ", 2)[1])
    if b"transfer-encoding: chunked" in head_raw.lower():
        payload = _dechunk(payload)
    return status, payload


def _dechunk(data: bytes) -> bytes:
    out = b""
    while data:
        size_line, _, rest = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out += rest[:size]
        data = rest[size + 2 :]
    return out


def multipart(parts: list[tuple[str, str | None, bytes]], boundary: str = "BND") -> bytes:
    """A multipart/form-data body of (name, filename or None, data) parts, written as is."""
    out = b""
    for name, filename, data in parts:
        disp = f'form-data; name="{name}"'
        if filename is not None:
            disp += f'; filename="{filename}"'
        out += f"--{boundary}\r\nContent-Disposition: {disp}\r\n\r\n".encode() + data + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


def wav(seconds: float, rate: int = 8000) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"\0\0" * round(rate * seconds))
    return buf.getvalue()
