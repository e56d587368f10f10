from __future__ import annotations

import pytest

from relaygate.relay.sse import SSEDecoder, frame


def feed_all(parts: list[bytes]) -> list[tuple[str | None, bytes]]:
    d = SSEDecoder()
    out: list[tuple[str | None, bytes]] = []
    for p in parts:
        out.extend(d.feed(p))
    out.extend(d.flush())
    return out


def test_fast_path_and_done() -> None:
    assert feed_all([b'data: {"a":1}\n\ndata: [DONE]\n\n']) == [
        (None, b'{"a":1}'),
        (None, b"[DONE]"),
    ]


@pytest.mark.parametrize("size", [1, 2, 3, 7, 64])
def test_split_anywhere(size: int) -> None:
    raw = b'event: message_start\ndata: {"x": "y"}   \n\n: keep-alive\n\ndata:{"b":2}\r\n\r\n'
    parts = [raw[i : i + size] for i in range(0, len(raw), size)]
    assert feed_all(parts) == [("message_start", b'{"x": "y"}   '), (None, b'{"b":2}')]


def test_comments_and_blank_keepalives_ignored() -> None:
    assert feed_all([b": keep-alive\n\n\n\n:HTTP_STATUS/200\n\ndata: 1\n\n"]) == [(None, b"1")]


def test_multiline_data_joined() -> None:
    assert feed_all([b"data: a\ndata: b\n\n"]) == [(None, b"a\nb")]


def test_unterminated_last_event_flushed() -> None:
    assert feed_all([b'data: {"last":true}']) == [(None, b'{"last":true}')]


def test_frame() -> None:
    assert frame(b"{}") == b"data: {}\n\n"


def test_crlf_split_between_reads_is_one_line_break() -> None:
    """A \r\n split across two reads must not end a multi-line event early."""
    body = b'event: result\r\ndata: {"a":1}\r\n\r\nevent: done\r\ndata: x\r\ndata: y\r\n\r\n'
    for cut in range(1, len(body)):
        dec = SSEDecoder()
        events = dec.feed(body[:cut]) + dec.feed(body[cut:]) + dec.flush()
        assert events == [("result", b'{"a":1}'), ("done", b"x\ny")], cut
    # one byte at a time
    dec = SSEDecoder()
    events = [e for i in range(len(body)) for e in dec.feed(body[i : i + 1])]
    assert events == [("result", b'{"a":1}'), ("done", b"x\ny")]
    # a lone \r still ends a line
    dec = SSEDecoder()
    assert dec.feed(b"data: a\r") == []
    assert dec.feed(b"\rdata: b\r\r") == [(None, b"a"), (None, b"b")]
