"""relay/multipart.py: a multipart body read as it streams in (any chunking), encoded again
for the upstream with its exact length, and every refusal leaving no spool file behind.
Driven through a plain ASGI receive callable (multipart_kit.py); the property tests are in
test_multipart_properties.py."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path
from typing import Any

import pytest
from multipart_kit import (
    BOUNDARY,
    CTYPE,
    LIMIT,
    Spec,
    build,
    contents,
    encoded,
    make_request,
    parse,
    redirect_spools,
    refused,
    split,
    spooled,
)

from relaygate.asgi import Request
from relaygate.errors import BodyTooLarge, InvalidRequest
from relaygate.relay.multipart import FIELD_MAX, MAX_PARTS, Form, read_form


@pytest.fixture(autouse=True)
def spool_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return redirect_spools(tmp_path, monkeypatch)


SAMPLE: list[Spec] = [
    ("purpose", None, "", b"fine-tune"),
    ("file", "train.jsonl", "application/jsonl", b'{"a": 1}\r\n{"b": "--x"}\n' * 50),
    ("model", None, "text/plain", "gpt-4o-mini ünïcode".encode()),
    ("image[]", "a.png", "image/png", bytes(range(256)) * 40),
    ("empty", None, "", b""),
    ("blank", "", "application/octet-stream", b""),
]


# ---- round trip ----------------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(8))
async def test_round_trip_in_random_chunks(seed: int, spool_root: Path) -> None:
    rng = random.Random(seed)
    form = await parse(build(SAMPLE), rng)
    try:
        assert contents(form) == SAMPLE
        assert len(spooled(spool_root)) == 3  # the file parts only
        assert form.text("purpose") == "fine-tune" and form.text("file") is None
        assert [p.filename for p in form.files("image[]")] == ["a.png"]
        ctype, length, data = await encoded(form)
        assert length == len(data)
        assert ctype.startswith("multipart/form-data; boundary=relaygate-")
        again = await read_form(
            make_request(split(data, rng), content_type=ctype.encode(), length=length), LIMIT, 5.0
        )
        try:
            assert contents(again) == SAMPLE
        finally:
            again.close()
        # the factory serves a retry on another channel: the same bytes again
        _, length2, factory = form.encode()
        first = b"".join([c async for c in factory()])
        assert b"".join([c async for c in factory()]) == first and len(first) == length2
    finally:
        form.close()
    assert spooled(spool_root) == []
    form.close()  # idempotent


async def test_one_byte_chunks_and_boundary_split_everywhere() -> None:
    body = build(SAMPLE)
    form = await read_form(make_request([body[i : i + 1] for i in range(len(body))]), LIMIT, 5.0)
    try:
        assert contents(form) == SAMPLE
    finally:
        form.close()
    # the boundary of the second part cut at every position
    cut = body.index(b"--" + BOUNDARY.encode(), 10)
    for k in range(cut, cut + len(BOUNDARY) + 6):
        form = await read_form(make_request([body[:k], body[k:]]), LIMIT, 5.0)
        try:
            assert contents(form) == SAMPLE
        finally:
            form.close()


async def test_empty_chunks_are_harmless() -> None:
    body = build(SAMPLE[:2])
    form = await read_form(make_request([b"", body[:7], b"", body[7:], b""]), LIMIT, 5.0)
    try:
        assert contents(form) == SAMPLE[:2]
    finally:
        form.close()


# ---- quoting and set_text ------------------------------------------------------------------
async def test_names_with_quotes_and_line_breaks_are_escaped() -> None:
    form = await parse(build([("file", "x.txt", "text/plain", b"data")]))
    try:
        form.parts[0].filename = 'evil".txt\r\nContent-Type: text/html'
        form.set_text('na"me\r\nX-Injected: 1', "v")
        ctype, length, data = await encoded(form)
        assert length == len(data)
        heads = [line for line in data.split(b"\r\n") if line.startswith(b"Content-")]
        assert b'filename="evil%22.txt%0D%0AContent-Type: text/html"' in heads[0]
        assert not any(line.startswith(b"X-Injected") for line in data.split(b"\r\n"))
        again = await parse(data, content_type=ctype.encode())
        try:
            assert [(p.name, p.filename) for p in again.parts] == [
                ("file", "evil%22.txt%0D%0AContent-Type: text/html"),
                ("na%22me%0D%0AX-Injected: 1", None),
            ]
            assert again.parts[0].content_type == "text/plain"
        finally:
            again.close()
    finally:
        form.close()


async def test_backslashes_survive_the_upstream_parse() -> None:
    """A name ending in a backslash must not swallow its closing quote upstream (the part
    would lose its filename: the gateway and the upstream would read different forms)."""
    form = Form()
    form.set_text("purpose", "batch")
    form.set_text("x\\", "v")
    form.parts[1].filename = "dir\\a.txt\\"
    form.set_text("a\\\\b", "w")
    ctype, length, data = await encoded(form)
    assert length == len(data)
    again = await parse(data, content_type=ctype.encode())
    assert [(p.name, p.filename) for p in again.parts] == [
        ("purpose", None),
        ("x%5C", "dir%5Ca.txt%5C"),
        ("a%5C%5Cb", None),
    ]


async def test_oversized_part_header_is_malformed(spool_root: Path) -> None:
    body = build([("file", "a.txt", "", b"data"), ("n" * 20000, None, "", b"v")])
    err = await refused(InvalidRequest, make_request(split(body, random.Random(5))), spool_root)
    assert "malformed" in err.message and err.http_status(True) == 400


async def test_set_text_replaces_the_first_field_or_adds_one() -> None:
    body = build([("model", None, "", b"client-model"), ("model", None, "", b"second")])
    form = await parse(body)
    form.set_text("model", "upstream-model-ü")
    form.set_text("temperature", "0.2")
    assert [(p.name, p.value) for p in form.parts] == [
        ("model", "upstream-model-ü".encode()),
        ("model", b"second"),
        ("temperature", b"0.2"),
    ]
    ctype, length, data = await encoded(form)
    assert length == len(data)
    again = await parse(data, content_type=ctype.encode())
    assert again.text("model") == "upstream-model-ü" and again.text("temperature") == "0.2"
    assert again.text("missing") is None


# ---- limits --------------------------------------------------------------------------------
async def test_declared_length_over_the_limit_is_refused_before_reading(spool_root: Path) -> None:
    async def receive() -> dict[str, Any]:
        raise AssertionError("the body must not be read")

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/v1/files",
        "headers": [(b"content-type", CTYPE), (b"content-length", b"1001")],
    }
    req = Request(scope, receive, receive, False)  # type: ignore[arg-type]
    err = await refused(BodyTooLarge, req, spool_root, limit=1000)
    assert err.http_status(True) == 413


async def test_undeclared_body_over_the_limit_leaves_no_spool(spool_root: Path) -> None:
    body = build([("purpose", None, "", b"x"), ("file", "big.bin", "", b"z" * 5000)])
    chunks = split(body, random.Random(1), max_size=300)
    err = await refused(BodyTooLarge, make_request(chunks), spool_root, limit=len(body) - 1)
    assert err.http_status(True) == 413
    # exactly at the limit is accepted
    form = await read_form(make_request(chunks), len(body), 5.0)
    assert form.parts[1].size == 5000
    form.close()


async def test_field_max_and_file_parts_over_it(spool_root: Path) -> None:
    ok = await parse(build([("prompt", None, "", b"p" * FIELD_MAX)]), random.Random(2))
    assert ok.parts[0].size == FIELD_MAX
    big = b"p" * (FIELD_MAX + 1)
    body = build([("file", "f.bin", "", big), ("prompt", None, "", big)])
    err = await refused(
        InvalidRequest, make_request(split(body, random.Random(3), max_size=70000)), spool_root
    )
    assert "`prompt`" in err.message and err.http_status(True) == 400
    files = await parse(build([("file", "f.bin", "", big)]))
    assert files.parts[0].size == FIELD_MAX + 1
    files.close()


async def test_max_parts(spool_root: Path) -> None:
    specs: list[Spec] = [(f"f{i}", None, "", b"v") for i in range(MAX_PARTS)]
    form = await parse(build(specs))
    assert len(form.parts) == MAX_PARTS
    specs[-1] = ("file", "a.txt", "", b"data")  # a spooled part before the refusal
    over = [*specs, ("one-too-many", None, "", b"v")]
    err = await refused(InvalidRequest, make_request([build(over)]), spool_root)
    assert str(MAX_PARTS) in err.message


# ---- malformed bodies ----------------------------------------------------------------------
async def test_body_ending_before_the_closing_boundary(spool_root: Path) -> None:
    body = build(SAMPLE)
    for end in (len(body) - len(f"--{BOUNDARY}--\r\n"), body.index(b"\x00\x01\x02") + 10, 0, 5):
        err = await refused(InvalidRequest, make_request([body[:end]]), spool_root)
        assert err.http_status(True) == 400


async def test_part_without_content_disposition(spool_root: Path) -> None:
    good = build([("file", "a.txt", "", b"data")])[: -len(f"--{BOUNDARY}--\r\n")]
    bad = good + f"--{BOUNDARY}\r\nContent-Type: text/plain\r\n\r\nx\r\n--{BOUNDARY}--\r\n".encode()
    err = await refused(InvalidRequest, make_request([bad]), spool_root)
    assert "Content-Disposition" in err.message
    unnamed = good + f"--{BOUNDARY}\r\nContent-Disposition: form-data\r\n\r\nx\r\n".encode()
    await refused(
        InvalidRequest, make_request([unnamed + f"--{BOUNDARY}--\r\n".encode()]), spool_root
    )
    attach = (
        good + f'--{BOUNDARY}\r\nContent-Disposition: attachment; name="a"\r\n\r\nx\r\n'.encode()
    )
    await refused(
        InvalidRequest, make_request([attach + f"--{BOUNDARY}--\r\n".encode()]), spool_root
    )


async def test_garbage_is_malformed(spool_root: Path) -> None:
    body = build([("file", "a.txt", "", b"data")])
    bad = body.replace(b"\r\n\r\n", b"\r\n\x00\r\n", 1)  # a header line without a colon
    err = await refused(InvalidRequest, make_request([bad]), spool_root)
    assert err.http_status(True) == 400


@pytest.mark.parametrize(
    "ctype",
    [
        None,
        b"multipart/form-data",
        b"multipart/form-data; boundary=",
        b"multipart/form-data; charset=utf-8",
        b"application/x-www-form-urlencoded",
        b"application/json; boundary=abc",
        b"multipart/mixed; boundary=" + BOUNDARY.encode(),
    ],
)
async def test_wrong_content_types(ctype: bytes | None, spool_root: Path) -> None:
    req = make_request([build(SAMPLE)], content_type=ctype)
    err = await refused(InvalidRequest, req, spool_root)
    assert "multipart/form-data" in err.message and err.http_status(True) == 400


async def test_content_type_case_and_quoted_boundary() -> None:
    ctype = f'Multipart/Form-Data; boundary="{BOUNDARY}"'.encode()
    form = await parse(build(SAMPLE[:1]), content_type=ctype)
    assert contents(form) == SAMPLE[:1]


@pytest.mark.parametrize("coding", [b"gzip", b"br", b"deflate", b"GZIP"])
async def test_compressed_upload_refused(coding: bytes, spool_root: Path) -> None:
    req = make_request([build(SAMPLE)], headers={b"content-encoding": coding})
    err = await refused(InvalidRequest, req, spool_root)
    assert err.http_status(True) == 415 and err.code == "unsupported_content_encoding"


async def test_identity_encoding_accepted() -> None:
    form = await parse(build(SAMPLE[:1]), headers={b"content-encoding": b"identity"})
    assert form.text("purpose") == "fine-tune"


# ---- the client -----------------------------------------------------------------------------
async def test_receive_timeout_is_408(spool_root: Path) -> None:
    body = build(SAMPLE)
    req = make_request([body[: len(body) // 2]], then="stall")  # mid-file, then nothing
    err = await refused(InvalidRequest, req, spool_root, body_timeout=0.05)
    assert err.http_status(True) == 408 and err.code == "request_timeout"


async def test_client_disconnect(spool_root: Path) -> None:
    body = build(SAMPLE)
    req = make_request(split(body[:-40], random.Random(4)), then="disconnect")
    await refused(InvalidRequest, req, spool_root)


async def test_cancelled_upload_leaves_no_spool(spool_root: Path) -> None:
    body = build(SAMPLE)
    task = asyncio.ensure_future(
        read_form(make_request([body[: len(body) // 2]], then="stall"), LIMIT, 30.0)
    )
    for _ in range(50):
        await asyncio.sleep(0)
        if spooled(spool_root):
            break
    assert spooled(spool_root), "the file part should be spooling by now"
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert spooled(spool_root) == []
