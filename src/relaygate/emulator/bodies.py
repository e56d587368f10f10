"""Request bodies of the emulators: a JSON document, or a multipart form read whole.

``Provider.api`` (``emulator/base.py``) reads the body with :func:`read_json`, or with
:func:`read_form` for an endpoint registered with ``multipart=True``. A body that cannot be
read is a :class:`BadBody` (answered 400, or 413 when too large, in the provider's error
shape); a form is a :class:`Form` of text fields and :class:`Upload` files. The request log
(``Stats.recorded``) keeps :func:`recorded_body`: the JSON as parsed, or for a form its text
fields and, per file, its name, content type and size (never the bytes).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

__all__ = ["BadBody", "Form", "Upload", "read_form", "read_json", "recorded_body"]

MULTIPART_CT = "multipart/form-data"
#: OpenAI's answer to a multipart body it cannot parse
UNPARSABLE_FORM = "Could not parse multipart form"


@dataclass(frozen=True, slots=True)
class BadBody:
    """A body that could not be read: ``message`` None for invalid JSON (the provider says)."""

    message: str | None = None
    status: int = 400


@dataclass(frozen=True, slots=True)
class Upload:
    """One uploaded file of a form."""

    filename: str
    content_type: str
    data: bytes

    def summary(self) -> dict[str, Any]:
        return {
            "filename": self.filename,
            "content_type": self.content_type,
            "size": len(self.data),
        }


@dataclass(slots=True)
class Form:
    """A multipart form: text fields and files by field name, each in the order sent."""

    fields: dict[str, list[str]] = field(default_factory=dict)
    files: dict[str, list[Upload]] = field(default_factory=dict)

    def text(self, *names: str) -> str | None:
        """The first text value under any of ``names`` (None if absent)."""
        values = self.texts(*names)
        return values[0] if values else None

    def texts(self, *names: str) -> list[str]:
        """Every text value under ``names`` (``"x"`` and ``"x[]"`` style names alike)."""
        return [v for n in names for v in self.fields.get(n, ())]

    def uploads(self, *names: str) -> list[Upload]:
        """Every file under ``names``."""
        return [u for n in names for u in self.files.get(n, ())]

    def record(self) -> dict[str, Any]:
        """The form for the request log: one key per name, a list when the name repeats."""
        out: dict[str, Any] = {}
        for name, values in self.fields.items():
            out[name] = values[0] if len(values) == 1 else list(values)
        for name, ups in self.files.items():
            out[name] = ups[0].summary() if len(ups) == 1 else [u.summary() for u in ups]
        return out


async def read_json(request: web.Request) -> Any:
    """The JSON body: None when absent or blank, ``BadBody()`` when it does not parse."""
    if not request.can_read_body:
        return None
    raw = await request.read()
    if not raw.strip():
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return BadBody()


async def read_form(request: web.Request) -> Form | BadBody:
    """The multipart form (text fields decoded, files read into memory) or why it is bad."""
    if request.content_type != MULTIPART_CT:
        header = request.headers.get("Content-Type", "")
        return BadBody(
            f"Invalid Content-Type header ({header}), expected multipart/form-data. (HINT: If "
            "you're using curl, you can pass -H 'Content-Type: multipart/form-data')"
        )
    try:
        posted = await request.post()
    except web.HTTPRequestEntityTooLarge:
        return BadBody("Maximum content size limit exceeded", 413)
    except (ValueError, UnicodeDecodeError, LookupError):
        return BadBody(UNPARSABLE_FORM)
    form = Form()
    for name, value in posted.items():
        if isinstance(value, web.FileField):
            with value.file:
                data = value.file.read()
            upload = Upload(value.filename, value.content_type, data)
            form.files.setdefault(name, []).append(upload)
        else:
            text = value if isinstance(value, str) else value.decode("utf-8", "replace")
            form.fields.setdefault(name, []).append(text)
    return form


def recorded_body(body: Any) -> Any:
    """What the request log keeps of a body read by :func:`read_json` or :func:`read_form`."""
    if isinstance(body, BadBody):
        return None
    if isinstance(body, Form):
        return body.record()
    return body
