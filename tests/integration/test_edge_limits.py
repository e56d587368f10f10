"""Limits at the server edge, before authentication, against the real `relaygate serve`
process: request head size, header count, head and body read timeouts (edge/protocol.py,
asgi.read_body)."""

from __future__ import annotations

import contextlib
import json
import select
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Env, Upstreams, _seed
from gateway import Gateway

HEADER_TIMEOUT = 1.0
BODY_TIMEOUT = 1.0


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory, upstreams: Upstreams) -> Iterator[Env]:
    """A gateway with short head and body timeouts (the size limits at their defaults)."""
    gw = Gateway(
        Path(tmp_path_factory.mktemp("gw-edge")),
        {
            "RELAYGATE_HEADER_TIMEOUT": str(HEADER_TIMEOUT),
            "RELAYGATE_BODY_TIMEOUT": str(BODY_TIMEOUT),
        },
    ).start()
    try:
        yield _seed(gw, upstreams)
    finally:
        gw.stop()


def connect(env: Env) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", env.gw.port), timeout=10)
    return sock


def read_until_close(sock: socket.socket, timeout: float = 10) -> bytes:
    sock.settimeout(timeout)
    out = b""
    while True:
        try:
            data = sock.recv(65536)
        except (ConnectionResetError, TimeoutError):
            break
        if not data:
            break
        out += data
    return out


def read_response(sock: socket.socket) -> bytes:
    """One response with a content-length from a kept-alive connection."""
    if sock.gettimeout() is None:
        sock.settimeout(5)
    raw = b""
    while b"\r\n\r\n" not in raw:
        raw += sock.recv(65536)
    length = int(split_response(raw)[1]["content-length"])
    while len(raw.partition(b"\r\n\r\n")[2]) < length:
        raw += sock.recv(65536)
    return raw


def split_response(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, body


def assert_json_error(raw: bytes, status: int, code: str) -> None:
    got, headers, body = split_response(raw)
    assert got == status, raw[:300]
    assert headers["content-type"] == "application/json"
    assert headers["connection"] == "close"
    assert int(headers["content-length"]) == len(body)
    err = json.loads(body)["error"]
    assert err["code"] == code and err["message"], body


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_silent_connection_gets_408(edge: Env) -> None:
    sock = connect(edge)
    t0 = time.monotonic()
    raw = read_until_close(sock)
    elapsed = time.monotonic() - t0
    assert_json_error(raw, 408, "request_timeout")
    assert HEADER_TIMEOUT - 0.1 < elapsed < HEADER_TIMEOUT + 1.5, elapsed


def test_slowloris_connections_are_answered_408_and_closed(edge: Env) -> None:
    """50 connections trickling a request head in byte by byte are all answered and closed
    within the head timeout (before: they stayed open for as long as bytes kept coming)."""
    head = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 200
    socks = [connect(edge) for _ in range(50)]
    t0 = time.monotonic()
    answers: dict[int, bytes] = {}
    sent = 0
    while len(answers) < len(socks) and time.monotonic() - t0 < 10:
        for i, sock in enumerate(socks):
            if i in answers:
                continue
            with contextlib.suppress(OSError):
                sock.send(head[sent : sent + 1])
        sent += 1
        readable, _, _ = select.select(
            [s for i, s in enumerate(socks) if i not in answers], [], [], 0.2
        )
        for sock in readable:
            answers[socks.index(sock)] = read_until_close(sock, timeout=5)
    elapsed = time.monotonic() - t0
    assert len(answers) == 50, f"{len(answers)} of 50 connections answered in {elapsed:.1f}s"
    assert elapsed < HEADER_TIMEOUT + 2.0, elapsed
    for raw in answers.values():
        assert_json_error(raw, 408, "request_timeout")
    for sock in socks:
        sock.close()
    # the gateway still serves
    sock = connect(edge)
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert split_response(read_until_close(sock))[0] == 200


def test_huge_head_is_refused_early_without_memory_growth(edge: Env) -> None:
    """20 MB of header bytes on one unauthenticated connection: 431 after the first 64 KiB,
    the rest is dropped, and the server's memory does not grow (before: the parser buffered
    it all and the process kept the memory)."""
    assert edge.gw.proc is not None
    pid = edge.gw.proc.pid
    before = rss_kib(pid)
    sock = connect(edge)
    sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nX-Filler: ")
    chunk = b"b" * 65536
    sent = 0
    answered_after = None
    raw = b""
    while sent < 20 * 1024 * 1024:
        readable, _, _ = select.select([sock], [], [], 0)
        if readable:
            answered_after = sent
            break
        try:
            sock.sendall(chunk)
        except OSError:  # the server closed after answering
            answered_after = sent
            break
        sent += len(chunk)
    raw = read_until_close(sock, timeout=5)
    sock.close()
    assert answered_after is not None, "no answer after 20 MB of header bytes"
    # the answer came long before 20 MB were sent (kernel buffers hold a few MB)
    assert answered_after < 12 * 1024 * 1024, answered_after
    assert_json_error(raw, 431, "request_header_too_large")
    time.sleep(0.3)
    grown = rss_kib(pid) - before
    print(f"answered after {answered_after} bytes sent; RSS {before} -> {before + grown} KiB")
    assert grown < 6 * 1024, f"RSS grew by {grown} KiB"


def test_head_within_limits_is_served(edge: Env) -> None:
    sock = connect(edge)
    headers = b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 500) for i in range(98))  # ~50 KiB, 100 fields
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + headers + b"Connection: close\r\n\r\n")
    status, _, body = split_response(read_until_close(sock))
    assert status == 200, body


def test_too_many_headers_gets_431(edge: Env) -> None:
    sock = connect(edge)
    headers = b"".join(b"X-H%d: 1\r\n" % i for i in range(101))
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n")
    assert_json_error(read_until_close(sock), 431, "request_header_too_large")


def test_head_over_size_limit_gets_431(edge: Env) -> None:
    sock = connect(edge)
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"c" * 70_000 + b"\r\n\r\n")
    assert_json_error(read_until_close(sock), 431, "request_header_too_large")


def test_keep_alive_connection_serves_several_requests(edge: Env) -> None:
    """The head timer does not fire between or during requests on a kept-alive connection."""
    sock = connect(edge)
    for _ in range(3):
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        data = read_response(sock)
        assert data.startswith(b"HTTP/1.1 200"), data
        time.sleep(HEADER_TIMEOUT * 0.7)  # together longer than the head timeout
    sock.close()


def _post_head(env: Env, length: int) -> bytes:
    return (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {env.key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
    ).encode()


def test_body_shorter_than_content_length_gets_408(edge: Env) -> None:
    """The client declares 500 bytes, sends 20 and stalls: answered 408 after the body
    timeout (before: the request waited forever)."""
    sock = connect(edge)
    sock.sendall(_post_head(edge, 500) + b'{"model":"gpt-4o-mi')
    t0 = time.monotonic()
    sock.settimeout(BODY_TIMEOUT + 5)
    raw = read_response(sock)
    elapsed = time.monotonic() - t0
    status, _, body = split_response(raw)
    assert status == 408, raw[:300]
    assert json.loads(body)["error"]["code"] == "request_timeout"
    assert elapsed < BODY_TIMEOUT + 2, elapsed


def test_slow_body_arriving_in_time_is_accepted(edge: Env) -> None:
    """The body timeout is the longest silence, not a total: a body sent in pieces 0.6 s
    apart (2.4 s in all, over the 1 s timeout) is read."""
    payload = json.dumps(
        {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    ).encode()
    sock = connect(edge)
    sock.sendall(_post_head(edge, len(payload)))
    pieces = [payload[i : i + 20] for i in range(0, len(payload), 20)][:4]
    rest = payload[sum(len(p) for p in pieces) :]

    def trickle() -> None:
        for piece in pieces:
            time.sleep(0.6)
            sock.sendall(piece)
        sock.sendall(rest)

    t = threading.Thread(target=trickle)
    t.start()
    sock.settimeout(10)
    data = sock.recv(65536)
    t.join()
    sock.close()
    assert data.startswith(b"HTTP/1.1 200"), data[:300]


def test_unread_body_cannot_hold_the_connection_open(edge: Env) -> None:
    """Refused before its body is read (no API key: 401), a request whose body keeps
    trickling in gets the connection closed within the head timeout (before: each byte
    postponed uvicorn's keep-alive timer, so the connection stayed open indefinitely)."""
    sock = connect(edge)
    sock.sendall(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n{"
    )
    sock.settimeout(5)
    assert read_response(sock).startswith(b"HTTP/1.1 401")
    t0 = time.monotonic()
    closed_after = None
    while time.monotonic() - t0 < 8:
        try:
            sock.send(b" ")
        except OSError:
            closed_after = time.monotonic() - t0
            break
        readable, _, _ = select.select([sock], [], [], 0.25)
        if readable:
            try:
                if sock.recv(1024) == b"":
                    closed_after = time.monotonic() - t0
                    break
            except ConnectionResetError:
                closed_after = time.monotonic() - t0
                break
    sock.close()
    assert closed_after is not None, "the connection stayed open for 8 s"
    assert closed_after < HEADER_TIMEOUT + 1.5, closed_after


def test_keep_alive_after_a_large_body(edge: Env) -> None:
    """A request whose body is larger than the head limit does not make the next request
    on the same connection look oversized."""
    payload = json.dumps(
        {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x" * 200_000}]}
    ).encode()
    sock = connect(edge)
    for _ in range(2):
        sock.sendall(_post_head(edge, len(payload)) + payload)
        assert read_response(sock).startswith(b"HTTP/1.1 200")
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    assert read_response(sock).startswith(b"HTTP/1.1 200")
    sock.close()


def test_trailer_flood_closes_the_connection(edge: Env) -> None:
    """A chunked body answered before it was read (no API key) followed by endless trailer
    fields: the connection is closed after the header-count limit (before: every trailer
    was kept in memory for as long as the client kept sending)."""
    sock = connect(edge)
    sock.sendall(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"2\r\n{}\r\n"
    )
    assert read_response(sock).startswith(b"HTTP/1.1 401")
    sock.sendall(b"0\r\n")
    trailers = b"".join(b"X-T%d: v\r\n" % i for i in range(1000))
    sent = 0
    closed = False
    while sent < 200 and not closed:
        try:
            sock.sendall(trailers)
        except OSError:
            closed = True
            break
        sent += 1
        readable, _, _ = select.select([sock], [], [], 0.01)
        if readable:
            try:
                closed = sock.recv(1024) == b""
            except ConnectionResetError:
                closed = True
    sock.close()
    assert closed, f"still open after {sent * 1000} trailer fields"
    assert sent < 50, sent
