"""Hostile multipart uploads through the running gateway (transcriptions, image edits, files):
malformed forms, too many parts, an over-long text field, compressed bodies, odd file names,
bodies exactly at the cap and one byte over, a Content-Length that lies; upstreams that fail
or hang on an upload; a client that leaves; a gateway killed (-9) mid-upload. Each ends with a
JSON error in the error table's shape (or a clean success), no upstream request when the
gateway refused, no object recorded, and no spool file left in the gateway's
``$TMPDIR/relaygate-uploads/<pid>``.
"""

from __future__ import annotations

import gzip
import os
import re
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from gateway import Gateway
from probe_world import (
    PNG,
    UPLOAD_CAP,
    World,
    assert_error,
    multipart,
    raw_http,
    spool_files,
    start_world,
    wav,
)

from relaygate.providers.surfaces import SURFACES

CT = "multipart/form-data; boundary=BND"
ENDPOINTS = ["/audio/transcriptions", "/images/edits", "/files"]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    yield from start_world(tmp_path_factory.mktemp("upload-probes"))


@pytest.fixture(autouse=True)
def _reset(world: World) -> Iterator[None]:
    for emu in world.emus:
        emu.reset(knobs=True, stats=True)
    yield
    assert spool_files(world) == [], "an upload left its spool file behind"


def good_form(**extra: bytes) -> list[tuple[str, str | None, bytes]]:
    parts: list[tuple[str, str | None, bytes]] = [
        ("model", None, b"house-whisper"),
        ("purpose", None, b"user_data"),
        ("prompt", None, b"a hat"),
        ("file", "a.wav", wav(0.5)),
    ]
    return parts + [(k, None, v) for k, v in extra.items()]


GOOD = multipart(good_form())
MALFORMED: dict[str, tuple[dict[str, str], bytes, int]] = {
    "no boundary": ({"Content-Type": "multipart/form-data"}, GOOD, 403),
    "empty boundary": ({"Content-Type": "multipart/form-data; boundary="}, GOOD, 403),
    "boundary mismatch": ({"Content-Type": "multipart/form-data; boundary=OTHER"}, GOOD, 403),
    "truncated": ({"Content-Type": CT}, GOOD[:-40], 403),
    "no closing boundary": ({"Content-Type": CT}, GOOD[: -len(b"--BND--\r\n")], 403),
    "empty body": ({"Content-Type": CT}, b"", 403),
    "garbage": ({"Content-Type": CT}, os.urandom(4096), 403),
    "no disposition": (
        {"Content-Type": CT},
        b"--BND\r\nContent-Type: text/plain\r\n\r\nx\r\n--BND--\r\n",
        403,
    ),
    "not form-data": (
        {"Content-Type": CT},
        b'--BND\r\nContent-Disposition: attachment; name="a"\r\n\r\nx\r\n--BND--\r\n',
        403,
    ),
    "5000 parts": (
        {"Content-Type": CT},
        multipart([(f"f{i}", None, b"x") for i in range(5000)]),
        403,
    ),
    "2 MiB text field": (
        {"Content-Type": CT},
        multipart(good_form(prompt=b"p" * (2 * 1024 * 1024))),
        403,
    ),
    "gzip": ({"Content-Type": CT, "Content-Encoding": "gzip"}, gzip.compress(GOOD), 415),
    "br": ({"Content-Type": CT, "Content-Encoding": "br"}, GOOD, 415),
}


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_multipart_is_refused_before_upstream(
    world: World, endpoint: str, case: str
) -> None:
    headers, body, status = MALFORMED[case]
    before = world.ids("files")
    assert_error(world.post(endpoint, content=body, headers=headers), status)
    assert world.paths() == []
    assert world.ids("files") == before


def test_the_good_forms_are_served(world: World) -> None:
    for endpoint, parts in [("/audio/transcriptions", good_form()), ("/files", good_form()),
                            ("/images/edits", EDIT)]:  # fmt: skip
        r = world.post(endpoint, content=multipart(parts), headers={"Content-Type": CT})
        assert r.status_code == 200, (endpoint, r.text)


# ---- fields of a form ------------------------------------------------------------------------
EDIT = [("model", None, b"house-image"), ("prompt", None, b"a hat"),
        ("image", "in.png", PNG)]  # fmt: skip
BAD_FORMS: dict[str, tuple[str, list[tuple[str, str | None, bytes]], str]] = {
    **{
        f"n={v!r}": ("/images/edits", [*EDIT, ("n", None, v.encode())], "n")
        for v in ("abc", "0", "11", "-1", "1.5", "²", "١", "9" * 5000, "")
    },
    "no image": ("/images/edits", EDIT[:2], "image"),
    "image as text": ("/images/edits", [*EDIT[:2], ("image", None, b"x")], "image"),
    "no prompt": ("/images/edits", [EDIT[0], EDIT[2]], "prompt"),
    "no file": ("/audio/transcriptions", [("model", None, b"house-whisper")], "file"),
    "two files": (
        "/audio/transcriptions",
        [
            ("model", None, b"house-whisper"),
            ("file", "a.wav", wav(0.2)),
            ("file", "b.wav", wav(0.2)),
        ],
        "file",
    ),
    "model as a file": (
        "/audio/transcriptions",
        [("model", "m.txt", b"house-whisper"), ("file", "a.wav", wav(0.2))],
        "model",
    ),
    "unknown format": (
        "/audio/transcriptions",
        [
            ("model", None, b"house-whisper"),
            ("response_format", None, b"xml"),
            ("file", "a.wav", wav(0.2)),
        ],
        "response_format",
    ),
}


@pytest.mark.parametrize("case", list(BAD_FORMS))
def test_form_field_of_wrong_type_is_refused_with_its_name(world: World, case: str) -> None:
    endpoint, parts, param = BAD_FORMS[case]
    r = world.post(endpoint, content=multipart(parts), headers={"Content-Type": CT})
    assert_error(r, 403, param=param)
    assert world.paths() == []


ODD_NAMES = ['a"b.txt', "a\\b.txt", "../../../etc/passwd", "..\\..\\boot.ini", "ü😀.txt",
             "a\tb.txt", "a;b=c.txt", "x" * 500 + ".txt", "a\nb.txt",
             "a\r\nContent-Type: text/html\r\n\r\nX.txt", "", "%00.txt"]  # fmt: skip


@pytest.mark.parametrize("name", ODD_NAMES, ids=range(len(ODD_NAMES)))
def test_odd_file_names_are_stored_safely_or_refused(world: World, name: str) -> None:
    data = b"payload " + name.encode()
    parts = [("purpose", None, b"user_data"), ("file", name, data)]
    r = world.post("/files", content=multipart(parts), headers={"Content-Type": CT})
    if r.status_code != 200:
        assert_error(r, (400, 403))
        return
    f = r.json()
    assert not any(c in f["filename"] for c in '\r\n"'), f
    assert f["id"] in world.ids("files")
    got = world.request("GET", f"/files/{f['id']}/content")
    assert got.status_code == 200 and got.content.endswith(data[-4:])
    # nothing written elsewhere (relaygate-<uid>: content safety's normalisation table cache)
    written = sorted(n for n in os.listdir(world.tmp) if not re.fullmatch(r"relaygate-\d+", n))
    assert written == ["relaygate-uploads"]


# ---- the cap -------------------------------------------------------------------------------
def _form_of_size(size: int) -> tuple[bytes, int]:
    """A file upload whose whole body is ``size`` bytes, and its file's size."""
    head = len(multipart([("purpose", None, b"user_data"), ("file", "cap.bin", b"")]))
    body = multipart([("purpose", None, b"user_data"), ("file", "cap.bin", b"c" * (size - head))])
    assert len(body) == size
    return body, size - head


def test_an_upload_exactly_at_the_cap_is_served(world: World) -> None:
    body, file_size = _form_of_size(UPLOAD_CAP)
    r = world.post("/files", content=body, headers={"Content-Type": CT})
    assert r.status_code == 200, r.text
    assert r.json()["bytes"] == file_size


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
def test_an_upload_one_byte_over_the_cap_is_refused(world: World, declared: bool) -> None:
    body, _ = _form_of_size(UPLOAD_CAP + 1)
    before = world.ids("files")
    content: Any = body if declared else iter([body[i : i + 65536]
                                                for i in range(0, len(body), 65536)])  # fmt: skip
    r = world.post("/files", content=content, headers={"Content-Type": CT})
    err = assert_error(r, 403)
    assert "larger than" in err["message"]
    assert world.paths() == [] and world.ids("files") == before


# ---- bodies that do not arrive -------------------------------------------------------------
PARTIAL = (b'--BND\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nuser_data\r\n'
           b'--BND\r\nContent-Disposition: form-data; name="file"; filename="a.bin"\r\n\r\n'
           + b"x" * 50_000)  # fmt: skip


def _start_partial_upload(world: World, declared: int = 200_000) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", world.gw.port), timeout=10)
    head = (f"POST /v1/files HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {world.key}\r\n"
            f"Content-Type: {CT}\r\nContent-Length: {declared}\r\n\r\n")  # fmt: skip
    s.sendall(head.encode() + PARTIAL)
    deadline = time.monotonic() + 5
    while not (world.spool().is_dir() and os.listdir(world.spool())):
        assert time.monotonic() < deadline, "the upload was never spooled"
        time.sleep(0.05)
    return s


def test_content_length_that_lies_then_the_client_closes(world: World) -> None:
    before = world.ids("files")
    s = _start_partial_upload(world)
    s.close()
    assert spool_files(world) == []
    assert world.paths() == [] and world.ids("files") == before
    world.healthy()


def test_content_length_that_lies_and_the_client_waits_gets_408(world: World) -> None:
    s = _start_partial_upload(world)
    with s:
        began = time.monotonic()
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    assert time.monotonic() - began < 8
    head, _, body = data.partition(b"\r\n\r\n")
    assert_error((int(head.split(b" ")[1]), body), 408, code="request_timeout")
    assert world.paths() == []


# ---- the upstream fails, the client leaves ----------------------------------------------------
UPLOADS: dict[str, dict[str, Any]] = {
    "/files": {"data": {"purpose": "user_data"}, "files": {"file": ("a.bin", b"b" * 300_000)}},
    "/audio/transcriptions": {
        "data": {"model": "house-whisper"},
        "files": {"file": ("a.wav", wav(1.0), "audio/wav")},
    },
}


@pytest.mark.parametrize("endpoint", list(UPLOADS))
@pytest.mark.parametrize(
    ("knobs", "status", "code"),
    [({"fail_status": 500}, 502, "upstream_error"), ({"hang": True}, 504, "upstream_timeout")],
    ids=["500", "hang"],
)
def test_upstream_failing_on_an_upload_leaves_no_spool_and_no_object(
    world: World, endpoint: str, knobs: dict[str, Any], status: int, code: str
) -> None:
    before = world.ids("files")
    for emu in world.emus:
        emu.configure(**knobs)
    began = time.monotonic()
    r = world.post(endpoint, timeout=30, **UPLOADS[endpoint])
    assert_error(r, status, code=code)
    assert time.monotonic() - began < 20
    assert world.emus[0].stats.snapshot()["requests"] >= 1  # the upstream was tried
    assert spool_files(world) == []
    assert world.ids("files") == before


def test_client_leaving_while_the_upstream_works_on_its_upload(world: World) -> None:
    for emu in world.emus:
        emu.configure(hang=True)
    with pytest.raises(httpx.ReadTimeout):
        world.post("/files", timeout=1.0, **UPLOADS["/files"])
    assert world.emus[0].stats.wait_for(lambda s: s.aborted >= 1, timeout=5)
    assert spool_files(world) == []
    for emu in world.emus:
        emu.reset(knobs=True)
    world.healthy()


# ---- kill -9 mid-upload ---------------------------------------------------------------------
def test_kill_9_mid_upload_then_a_restart_removes_the_dead_spool(
    world: World, tmp_path: Path
) -> None:
    env = {"TMPDIR": str(tmp_path), "RELAYGATE_MAX_UPLOAD_BYTES": str(UPLOAD_CAP)}
    (tmp_path / "gw").mkdir()
    gw = Gateway(tmp_path / "gw", env).start()
    try:
        uid = gw.create_user("kill", balance="10")
        key = gw.create_key(uid, name="kill")
        gw.create_channel(name="up", provider="openai_compat", profile="openai",
                          base_url=world.emus[0].base_url, keys=["sk-up-1"], models=["m"],
                          config={"surfaces": list(SURFACES)})  # fmt: skip
        assert gw.proc is not None
        pid = gw.proc.pid
        killed = World(gw, world.emus, tmp_path, key, key, key)
        killed.client.close()  # only raw sockets go to the gateway about to be killed
        s = _start_partial_upload(killed, declared=2_000_000)
        # with 1 worker uvicorn runs the app in the process it was started as
        assert os.listdir(tmp_path / "relaygate-uploads") == [str(pid)]
        os.kill(pid, signal.SIGKILL)
        assert gw.proc.wait(10) == -signal.SIGKILL
        s.close()
        left = tmp_path / "relaygate-uploads" / str(pid)
        assert len(os.listdir(left)) == 1  # the dead worker's spool file is still there
    finally:
        gw.stop()
    gw2 = Gateway(tmp_path / "gw", env).start()
    try:
        assert not left.exists()  # removed at start
        time.sleep(1.2)  # the configuration is loaded
        served = World(gw2, world.emus, tmp_path, key, key, key)
        with served.client:
            fid = served.upload(data=b"after the kill")
            assert served.request("GET", f"/files/{fid}/content").content == b"after the kill"
        status, _ = raw_http(served, "GET", "/v1/files?limit=5")
        assert status == 200
        assert spool_files(served) == []
    finally:
        gw2.stop()
