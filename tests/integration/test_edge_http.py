"""HTTP details at the edge, against the real gateway: close-delimited streams for HTTP/1.0
clients, gzip request bodies (asgi.read_body) and gzip answers (edge/gzip.py)."""

from __future__ import annotations

import gzip
import json
import socket

import httpx
from conftest import Env

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


def read_until_close(sock: socket.socket) -> bytes:
    sock.settimeout(10)
    out = b""
    while data := sock.recv(65536):
        out += data
    return out


def test_http10_stream_is_close_delimited(env: Env) -> None:
    """An HTTP/1.0 client gets the SSE stream without chunked framing, ended by the server
    closing the connection (before: chunk-size lines, which HTTP/1.0 clients do not parse)."""
    env.up.openai.configure(chunks=5)
    body = json.dumps({**CHAT, "stream": True}).encode()
    sock = socket.create_connection(("127.0.0.1", env.gw.port), timeout=10)
    sock.sendall(
        b"POST /v1/chat/completions HTTP/1.0\r\nHost: 127.0.0.1\r\n"
        + f"Authorization: Bearer {env.key}\r\n".encode()
        + b"Content-Type: application/json\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    raw = read_until_close(sock)  # returns only once the server closes
    sock.close()
    head, _, payload = raw.partition(b"\r\n\r\n")
    head_lines = head.lower().split(b"\r\n")
    assert head_lines[0].split()[1] == b"200", raw[:300]
    assert b"transfer-encoding: chunked" not in head_lines
    assert not any(h.startswith(b"content-length") for h in head_lines)
    assert b"content-type: text/event-stream; charset=utf-8" in head_lines
    assert b"connection: close" in head_lines
    # the payload is the bare SSE stream: every line is an event line or a separator
    lines = payload.split(b"\n")
    assert payload.startswith(b"data: {"), payload[:100]
    assert all(line == b"" or line.startswith(b"data: ") for line in lines), payload[:300]
    assert payload.endswith(b"data: [DONE]\n\n")
    contents = [json.loads(line[6:]) for line in lines if line.startswith(b"data: {")]
    assert sum(1 for c in contents if c["choices"] and c["choices"][0]["delta"].get("content")) == 5


def test_http10_json_answer_keeps_content_length(env: Env) -> None:
    body = json.dumps(CHAT).encode()
    sock = socket.create_connection(("127.0.0.1", env.gw.port), timeout=10)
    sock.sendall(
        b"POST /v1/chat/completions HTTP/1.0\r\n"
        + f"Authorization: Bearer {env.key}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    raw = read_until_close(sock)
    head, _, payload = raw.partition(b"\r\n\r\n")
    assert f"content-length: {len(payload)}".encode() in head.lower().split(b"\r\n"), head
    assert json.loads(payload)["object"] == "chat.completion"


def test_gzip_request_body_is_accepted(env: Env) -> None:
    """A gzip-compressed body (Content-Encoding: gzip) is decompressed (before: it reached
    the JSON parser compressed and was refused as invalid JSON)."""
    r = httpx.post(
        env.gw.base_url + "/chat/completions",
        content=gzip.compress(json.dumps(CHAT).encode()),
        headers={
            "Authorization": f"Bearer {env.key}",
            "Content-Type": "application/json",
            "Content-Encoding": "gzip",
        },
        timeout=10,
    )
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["content"]


def test_gzip_bomb_is_refused_by_decompressed_size(env: Env) -> None:
    """2 KiB of gzip that inflates to 8 MiB is refused by the body limit (1 MiB in tests)
    applied to the decompressed size."""
    inflated = b'{"model":"gpt-4o-mini","messages":[],"pad":"' + b" " * (8 << 20) + b'"}'
    bomb = gzip.compress(inflated, 9)
    assert len(bomb) < 16 * 1024
    r = httpx.post(
        env.gw.base_url + "/chat/completions",
        content=bomb,
        headers={"Authorization": f"Bearer {env.key}", "Content-Encoding": "gzip"},
        timeout=10,
    )
    assert r.status_code == 403, r.text
    err = r.json()["error"]
    assert err["code"] == "invalid_request_error"
    assert "larger than the 1024 KiB" in err["message"], err


def test_unsupported_content_encoding_is_refused_clearly(env: Env) -> None:
    r = httpx.post(
        env.gw.base_url + "/chat/completions",
        content=json.dumps(CHAT).encode(),
        headers={"Authorization": f"Bearer {env.key}", "Content-Encoding": "br"},
        timeout=10,
    )
    assert r.headers["content-type"] == "application/json", r.text
    assert r.status_code in (400, 403, 415), r.text
    assert "content-encoding 'br' is not supported" in r.json()["error"]["message"]


def test_corrupt_gzip_body_is_refused_clearly(env: Env) -> None:
    r = httpx.post(
        env.gw.base_url + "/chat/completions",
        content=gzip.compress(json.dumps(CHAT).encode())[:-12],
        headers={"Authorization": f"Bearer {env.key}", "Content-Encoding": "gzip"},
        timeout=10,
    )
    assert r.headers["content-type"] == "application/json", r.text
    assert r.status_code in (400, 403), r.text
    assert "gzip request body is truncated" in r.json()["error"]["message"]


def _embeddings(env: Env, accept_encoding: str) -> httpx.Response:
    env.up.openai.configure(embedding_dim=256)
    return httpx.post(
        env.gw.base_url + "/embeddings",
        json={"model": "text-embedding-3-small", "input": ["one", "two", "three"]},
        headers={"Authorization": f"Bearer {env.key}", "Accept-Encoding": accept_encoding},
        timeout=10,
    )


def test_large_json_answer_is_gzipped(env: Env) -> None:
    with httpx.Client(timeout=10) as client:
        env.up.openai.configure(embedding_dim=256)
        req = client.build_request(
            "POST",
            env.gw.base_url + "/embeddings",
            json={"model": "text-embedding-3-small", "input": ["one", "two", "three"]},
            headers={"Authorization": f"Bearer {env.key}", "Accept-Encoding": "gzip"},
        )
        r = client.send(req, stream=True)
        compressed = b"".join(r.iter_raw())
        r.close()
    assert r.status_code == 200
    assert r.headers["content-encoding"] == "gzip"
    assert r.headers["vary"] == "accept-encoding"
    assert int(r.headers["content-length"]) == len(compressed)
    answer = json.loads(gzip.decompress(compressed))
    assert len(answer["data"]) == 3 and len(answer["data"][0]["embedding"]) == 256
    assert len(compressed) < len(gzip.decompress(compressed)) * 0.7
    # httpx (as the openai SDK) decompresses transparently
    decoded = _embeddings(env, "gzip, deflate")
    assert decoded.headers["content-encoding"] == "gzip"
    assert len(decoded.json()["data"]) == 3


def test_no_gzip_without_accept_encoding(env: Env) -> None:
    r = _embeddings(env, "identity")
    assert r.status_code == 200
    assert "content-encoding" not in r.headers
    assert int(r.headers["content-length"]) == len(r.content) > 1024


def test_no_gzip_when_refused_with_q0(env: Env) -> None:
    r = _embeddings(env, "gzip;q=0, identity")
    assert "content-encoding" not in r.headers


def test_stream_is_never_gzipped(env: Env) -> None:
    with httpx.stream(
        "POST",
        env.gw.base_url + "/chat/completions",
        json={**CHAT, "stream": True},
        headers={"Authorization": f"Bearer {env.key}", "Accept-Encoding": "gzip"},
        timeout=10,
    ) as r:
        raw = b"".join(r.iter_raw())
    assert r.headers["content-type"].startswith("text/event-stream")
    assert "content-encoding" not in r.headers
    assert raw.endswith(b"data: [DONE]\n\n")


def test_small_answer_is_not_gzipped(env: Env) -> None:
    r = httpx.post(
        env.gw.base_url + "/chat/completions",
        json={"model": "no-such-model", "messages": [{"role": "user", "content": "hi"}]},
        headers={"Authorization": f"Bearer {env.key}", "Accept-Encoding": "gzip"},
        timeout=10,
    )
    assert r.status_code >= 400
    assert "content-encoding" not in r.headers
    assert int(r.headers["content-length"]) == len(r.content) < 1024
