"""Multipart uploads (files, audio, image edits, video references): read streamed, never
held whole in memory, and sent on streamed.

:func:`read_form` parses the client's ``multipart/form-data`` body as it arrives
(``python-multipart``'s streaming parser): text fields are kept in memory (each at most
``FIELD_MAX`` bytes), file parts are written to spool files in this process's directory under
``$TMPDIR/relaygate-uploads/<pid>`` (a worker killed mid-upload leaves its directory; the
next start removes the directories of processes that are gone: :func:`sweep_spools`).
The whole body is capped at ``RELAYGATE_MAX_UPLOAD_BYTES`` — a declared
``Content-Length`` over it is refused before reading, an undeclared body when it passes
the cap — and each wait for the next piece of body at ``RELAYGATE_BODY_TIMEOUT``.

:meth:`Form.encode` writes the form again for the upstream (with the upstream model name
in place of the client's), as a factory of chunks read from the spool files, so a retry on
another channel sends it again. :meth:`Form.close` removes the spool files; the relay
calls it when the request is over, whatever happened.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import tempfile
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import IO

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from relaygate.asgi import Request
from relaygate.errors import BodyTooLarge, InvalidRequest

__all__ = ["FIELD_MAX", "MAX_PARTS", "Form", "Part", "read_form", "spool_dir", "sweep_spools"]

#: largest text field (a prompt, a JSON string) kept in memory
FIELD_MAX = 1024 * 1024
#: most parts one form may have
MAX_PARTS = 64
_CHUNK = 256 * 1024
_SPOOLS = "relaygate-uploads"


def spool_dir() -> str:
    """This process's upload spool directory (made on first use)."""
    path = os.path.join(tempfile.gettempdir(), _SPOOLS, str(os.getpid()))
    os.makedirs(path, mode=0o700, exist_ok=True)
    return path


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_spools() -> int:
    """Remove the upload spools of processes that no longer run (killed mid-upload);
    returns how many files were removed. Called at startup."""
    root = os.path.join(tempfile.gettempdir(), _SPOOLS)
    removed = 0
    try:
        entries = os.listdir(root)
    except OSError:
        return 0
    for name in entries:
        if not name.isdigit() or _alive(int(name)):
            continue
        path = os.path.join(root, name)
        for leftover in os.listdir(path):
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(path, leftover))
                removed += 1
        with contextlib.suppress(OSError):
            os.rmdir(path)
    return removed


@dataclass(slots=True)
class Part:
    name: str
    filename: str | None  # None: a text field
    content_type: str
    value: bytes = b""  # a text field's bytes
    path: str | None = None  # a file part's spool file
    size: int = 0

    def text(self) -> str:
        return self.value.decode("utf-8", "replace")


def _quote(value: str) -> str:
    # the escaping browsers use in form-data names and file names (WHATWG HTML), and the
    # backslash too: server parsers read it as an escape in quoted strings, so a name
    # ending in ``\`` would swallow its closing quote (the upstream would read another form)
    value = value.replace("\\", "%5C").replace('"', "%22")
    return value.replace("\r", "%0D").replace("\n", "%0A")


@dataclass(slots=True)
class Form:
    parts: list[Part] = field(default_factory=list)

    def text(self, name: str) -> str | None:
        for p in self.parts:
            if p.name == name and p.filename is None:
                return p.text()
        return None

    def files(self, name: str) -> list[Part]:
        return [p for p in self.parts if p.name == name and p.filename is not None]

    def set_text(self, name: str, value: str) -> None:
        """Replace the text field ``name`` (the first one; added when missing)."""
        for p in self.parts:
            if p.name == name and p.filename is None:
                p.value = value.encode()
                p.size = len(p.value)
                return
        data = value.encode()
        self.parts.append(Part(name, None, "", data, None, len(data)))

    def encode(self) -> tuple[str, int, Callable[[], AsyncIterator[bytes]]]:
        """(content type, length, chunk factory) of this form as a multipart body."""
        boundary = "relaygate-" + secrets.token_hex(16)
        heads: list[bytes] = []
        for p in self.parts:
            disp = f'Content-Disposition: form-data; name="{_quote(p.name)}"'
            if p.filename is not None:
                disp += f'; filename="{_quote(p.filename)}"'
            head = f"--{boundary}\r\n{disp}\r\n"
            if p.content_type:
                head += f"Content-Type: {p.content_type}\r\n"
            heads.append((head + "\r\n").encode())
        tail = f"--{boundary}--\r\n".encode()
        length = sum(len(h) + p.size + 2 for h, p in zip(heads, self.parts, strict=True))
        length += len(tail)
        parts = self.parts

        async def chunks() -> AsyncIterator[bytes]:
            for head, p in zip(heads, parts, strict=True):
                yield head
                if p.path is None:
                    yield p.value
                else:
                    with open(p.path, "rb") as f:  # noqa: ASYNC230 - page-cache reads
                        while data := f.read(_CHUNK):
                            yield data
                yield b"\r\n"
            yield tail

        return f"multipart/form-data; boundary={boundary}", length, chunks

    def close(self) -> None:
        for p in self.parts:
            if p.path is not None:
                with contextlib.suppress(OSError):
                    os.unlink(p.path)
                p.path = None


class _Reader:
    """Parser callbacks building a :class:`Form`."""

    def __init__(self, form: Form) -> None:
        self.form = form
        self.header_name = bytearray()
        self.header_value = bytearray()
        self.headers: dict[bytes, bytes] = {}
        self.part: Part | None = None
        self.file: IO[bytes] | None = None
        self.ended = False

    def callbacks(self) -> dict[str, Callable[..., None]]:
        return {
            "on_part_begin": self.part_begin,
            "on_header_field": self.header_field,
            "on_header_value": self.header_value_,
            "on_header_end": self.header_end,
            "on_headers_finished": self.headers_finished,
            "on_part_data": self.part_data,
            "on_part_end": self.part_end,
            "on_end": self.end,
        }

    def part_begin(self) -> None:
        if len(self.form.parts) >= MAX_PARTS:
            raise InvalidRequest(f"The multipart body has more than {MAX_PARTS} parts.")
        self.headers = {}

    def header_field(self, data: bytes, start: int, end: int) -> None:
        self.header_name += data[start:end]

    def header_value_(self, data: bytes, start: int, end: int) -> None:
        self.header_value += data[start:end]

    def header_end(self) -> None:
        self.headers[bytes(self.header_name).strip().lower()] = bytes(self.header_value).strip()
        self.header_name.clear()
        self.header_value.clear()

    def headers_finished(self) -> None:
        disposition = self.headers.get(b"content-disposition")
        if disposition is None:
            raise InvalidRequest("A part of the multipart body has no Content-Disposition.")
        kind, options = parse_options_header(disposition)
        name = options.get(b"name")
        if kind != b"form-data" or name is None:
            raise InvalidRequest("A part of the multipart body is not a named form-data field.")
        filename = options.get(b"filename")
        ctype = self.headers.get(b"content-type", b"").decode("latin-1")
        part = Part(
            name.decode("utf-8", "replace"),
            None if filename is None else filename.decode("utf-8", "replace"),
            ctype,
        )
        if part.filename is not None:
            fd, path = tempfile.mkstemp(prefix="relaygate-upload-", dir=spool_dir())
            part.path = path
            self.file = os.fdopen(fd, "wb")
        self.form.parts.append(part)
        self.part = part

    def part_data(self, data: bytes, start: int, end: int) -> None:
        part = self.part
        assert part is not None
        part.size += end - start
        if self.file is not None:
            self.file.write(data[start:end])
        else:
            if part.size > FIELD_MAX:
                raise InvalidRequest(
                    f"The form field `{part.name}` is larger than {FIELD_MAX // 1024} KiB."
                )
            part.value += data[start:end]

    def part_end(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None
        self.part = None

    def end(self) -> None:
        self.ended = True

    def abort(self) -> None:
        if self.file is not None:
            with contextlib.suppress(OSError):
                self.file.close()
            self.file = None


def _boundary(content_type: bytes | None) -> bytes:
    if content_type is None:
        raise InvalidRequest(
            "This endpoint takes a multipart/form-data body; the request has no Content-Type."
        )
    kind, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        raise InvalidRequest(
            "This endpoint takes a multipart/form-data body with a boundary; got "
            f"`{content_type.decode('latin-1')[:80]}`."
        )
    return boundary


async def read_form(req: Request, limit: int, body_timeout: float) -> Form:
    """The request's multipart form, file parts spooled to disk (see the module docstring).
    Raises ``InvalidRequest`` (400, 408, 415) or ``BodyTooLarge`` (413); nothing is kept
    on failure."""
    headers = req.headers
    boundary = _boundary(headers.get(b"content-type"))
    encoding = headers.get(b"content-encoding", b"identity").strip().lower()
    if encoding not in (b"", b"identity"):
        raise InvalidRequest(
            "Multipart uploads cannot be compressed; send them without Content-Encoding.",
            code="unsupported_content_encoding",
            status=415,
        )
    declared = headers.get(b"content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    form = Form()
    reader = _Reader(form)
    parser = MultipartParser(boundary, reader.callbacks())  # type: ignore[arg-type]
    received = 0
    try:
        while True:
            try:
                message = await asyncio.wait_for(req.receive(), body_timeout)
            except TimeoutError:
                raise InvalidRequest(
                    f"The request body did not arrive: nothing for {body_timeout:g} s.",
                    code="request_timeout",
                    status=408,
                ) from None
            if message["type"] == "http.disconnect":
                raise InvalidRequest("The client went away while uploading.")
            chunk = message.get("body", b"")
            received += len(chunk)
            if received > limit:
                raise _too_large(limit)
            if chunk:
                try:
                    parser.write(chunk)
                except MultipartParseError as exc:
                    raise InvalidRequest(f"The multipart body is malformed: {exc}.") from None
            if not message.get("more_body", False):
                break
        if not reader.ended:
            raise InvalidRequest(
                "The multipart body is malformed: it ended before its closing boundary."
            )
    except BaseException:
        reader.abort()
        form.close()
        raise
    return form


def _too_large(limit: int) -> BodyTooLarge:
    mib = limit / (1024 * 1024)
    return BodyTooLarge(f"The upload is larger than the {mib:g} MiB this gateway accepts.")
