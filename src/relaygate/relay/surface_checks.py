"""Field checks of the model endpoints beyond chat (``relay/surface.py``), and what each
request may consume before it is sent (``billing/stage.py`` ``MEASURE``).

Every check raises ``InvalidRequest`` naming the field, in the error table's shape, before
anything goes upstream; fields the gateway does not need to understand are left to the
upstream. Limits follow OpenAI's API reference (``docs/api-surface.md``).
"""

from __future__ import annotations

import logging
import re
from typing import Any

import mutagen

from relaygate.billing.media import Measure
from relaygate.billing.stage import MEASURE, RESERVATION
from relaygate.billing.tokens import count_value
from relaygate.context import RelayContext
from relaygate.errors import InvalidRequest
from relaygate.relay.multipart import Form, Part
from relaygate.relay.pipeline import require_model, take_stream_flags

__all__ = [
    "completions",
    "form_fields",
    "image_edit",
    "image_generation",
    "image_variation",
    "moderations",
    "reported_seconds",
    "rerank",
    "rerank_tokens",
    "speech",
    "token_priced",
    "transcription",
]

log = logging.getLogger("relaygate")

#: the uploaded files of a multipart request, in its parsed fields (never sent as JSON)
FILES = "__files__"

SPEECH_MAX_CHARS = 4096
RERANK_MAX_DOCUMENTS = 1000
#: an integer form field: ASCII digits only (``int`` takes "²" for a digit, then fails)
_DIGITS = re.compile(r"[0-9]{1,18}")


def _int(body: dict[str, Any], name: str, low: int, high: int) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if FILES in body and isinstance(value, str) and _DIGITS.fullmatch(value):
        value = int(value)  # a multipart field arrives as text; a JSON number must be one
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise InvalidRequest(f"`{name}` must be an integer from {low} to {high}.", param=name)
    return value


def _text(body: dict[str, Any], name: str, *, required: bool, limit: int = 1_000_000) -> str:
    value = body.get(name)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or not value.strip():
        raise InvalidRequest(f"`{name}` is required and must be a non-empty string.", param=name)
    if len(value) > limit:
        raise InvalidRequest(f"`{name}` is longer than {limit} characters.", param=name)
    return value


def _prompt_ok(prompt: Any) -> bool:
    if isinstance(prompt, str):
        return True
    if not isinstance(prompt, list) or not prompt:
        return False
    if all(isinstance(x, str) for x in prompt):
        return True
    if all(isinstance(x, int) and not isinstance(x, bool) for x in prompt):
        return True
    return all(
        isinstance(x, list) and x and all(isinstance(t, int) and not isinstance(t, bool) for t in x)
        for x in prompt
    )


def completions(ctx: RelayContext, body: dict[str, Any]) -> None:
    ctx.model = require_model(body)
    if not _prompt_ok(body.get("prompt")):
        raise InvalidRequest(
            "`prompt` must be a string, an array of strings, or token arrays.", param="prompt"
        )
    _int(body, "max_tokens", 0, 10_000_000)
    _int(body, "n", 1, 128)
    _int(body, "best_of", 1, 128)
    take_stream_flags(ctx, body)


def moderations(ctx: RelayContext, body: dict[str, Any]) -> None:
    if body.get("model") is None:
        body["model"] = "omni-moderation-latest"  # OpenAI's default
    ctx.model = require_model(body)
    inp = body.get("input")
    ok = (isinstance(inp, str) and inp != "") or (isinstance(inp, list) and bool(inp))
    if not ok:
        raise InvalidRequest(
            "`input` must be a non-empty string, an array of strings, or content parts.",
            param="input",
        )


def rerank(ctx: RelayContext, body: dict[str, Any]) -> None:
    ctx.model = require_model(body)
    _text(body, "query", required=True)
    docs = body.get("documents")
    ok = isinstance(docs, list) and 0 < len(docs) <= RERANK_MAX_DOCUMENTS
    if ok:
        for d in docs:  # type: ignore[union-attr]
            if not (isinstance(d, str) or (isinstance(d, dict) and isinstance(d.get("text"), str))):
                ok = False
                break
    if not ok:
        raise InvalidRequest(
            f"`documents` must be an array of 1 to {RERANK_MAX_DOCUMENTS} strings or "
            '{"text": ...} objects.',
            param="documents",
        )
    _int(body, "top_n", 1, RERANK_MAX_DOCUMENTS)


def rerank_tokens(body: dict[str, Any]) -> int:
    """Tokens of a rerank request counted here (when the upstream reports none)."""
    docs = [d if isinstance(d, str) else d.get("text", "") for d in body.get("documents") or ()]
    return count_value(body.get("query")) + count_value(docs)


# ---- images -----------------------------------------------------------------------------
def _image_measure(ctx: RelayContext, body: dict[str, Any], default_model: str) -> None:
    if body.get("model") is None:
        body["model"] = default_model  # OpenAI's default
    ctx.model = require_model(body)
    n = _int(body, "n", 1, 10) or 1
    size = body.get("size")
    quality = body.get("quality")
    if size is not None and not isinstance(size, str):
        raise InvalidRequest("`size` must be a string such as 1024x1024.", param="size")
    if quality is not None and not isinstance(quality, str):
        raise InvalidRequest("`quality` must be a string.", param="quality")
    fmt = body.get("response_format")
    if fmt is not None and fmt not in ("url", "b64_json"):
        raise InvalidRequest("`response_format` must be url or b64_json.", param="response_format")
    ctx.put(MEASURE, Measure(images=n, size=size or "", quality=quality or ""))


def image_generation(ctx: RelayContext, body: dict[str, Any]) -> None:
    _text(body, "prompt", required=True, limit=32_000)
    _image_measure(ctx, body, "dall-e-2")


def _files(body: dict[str, Any], *names: str) -> list[Part]:
    files: dict[str, list[Part]] = body.get(FILES) or {}
    found = [p for n in names for p in files.get(n, ())]
    return found


def image_edit(ctx: RelayContext, body: dict[str, Any]) -> None:
    if not _files(body, "image", "image[]"):
        raise InvalidRequest("`image` is required: upload the image to edit.", param="image")
    _text(body, "prompt", required=True, limit=32_000)
    _image_measure(ctx, body, "dall-e-2")


def image_variation(ctx: RelayContext, body: dict[str, Any]) -> None:
    if not _files(body, "image"):
        raise InvalidRequest("`image` is required: upload the image to vary.", param="image")
    _image_measure(ctx, body, "dall-e-2")


def token_priced(ctx: RelayContext) -> bool:
    """Whether the request's model has token prices (then reported tokens are its bill)."""
    res = ctx.get(RESERVATION)
    price = res.price if res is not None else None
    return price is not None and bool(price.input or price.output)


# ---- audio ------------------------------------------------------------------------------
def audio_milliseconds(path: str) -> int | None:
    """The duration of an audio file read from its headers (``mutagen``: WAV, MP3, M4A,
    OGG, FLAC, WebM is not covered); None when it cannot be read."""
    try:
        found = mutagen.File(path)
    except Exception:  # any parse failure of a client's file: no local measure
        return None
    info = getattr(found, "info", None) if found is not None else None
    length = getattr(info, "length", None)
    if isinstance(length, int | float) and length > 0:
        return round(length * 1000)
    return None


#: OpenAI's transcript formats (diarized_json: gpt-4o-transcribe-diarize)
_TRANSCRIPT_FORMATS = ("json", "text", "srt", "verbose_json", "vtt", "diarized_json")


def transcription(ctx: RelayContext, body: dict[str, Any]) -> None:
    uploads = _files(body, "file")
    if len(uploads) != 1:
        raise InvalidRequest("`file` is required: upload one audio file.", param="file")
    ctx.model = require_model(body)
    fmt = body.get("response_format")
    if fmt is not None and fmt not in _TRANSCRIPT_FORMATS:
        raise InvalidRequest(
            f"`response_format` must be one of {', '.join(_TRANSCRIPT_FORMATS)}.",
            param="response_format",
        )
    path = uploads[0].path
    ms = audio_milliseconds(path) if path is not None else None
    ctx.put(MEASURE, Measure(milliseconds=ms or 0))


def reported_seconds(obj: dict[str, Any]) -> float | None:
    """Seconds of audio an upstream reported: ``usage`` of type ``duration``, or the
    ``duration`` of a ``verbose_json`` answer."""
    usage = obj.get("usage")
    if isinstance(usage, dict) and usage.get("type") == "duration":
        seconds = usage.get("seconds")
        if isinstance(seconds, int | float) and not isinstance(seconds, bool) and seconds >= 0:
            return float(seconds)
    duration = obj.get("duration")
    if isinstance(duration, int | float) and not isinstance(duration, bool) and duration >= 0:
        return float(duration)
    return None


def speech(ctx: RelayContext, body: dict[str, Any]) -> None:
    ctx.model = require_model(body)
    text = _text(body, "input", required=True, limit=SPEECH_MAX_CHARS)
    voice = body.get("voice")
    if not (isinstance(voice, str) and voice) and not isinstance(voice, dict):
        raise InvalidRequest("`voice` is required (a voice name).", param="voice")
    ctx.put(MEASURE, Measure(characters=len(text)))


# ---- multipart ----------------------------------------------------------------------------
def form_fields(form: Form) -> dict[str, Any]:
    """A multipart form as the dict the stages see: its text fields (the last of a
    repeated name; ``name[]`` fields as arrays) and, under ``FILES``, its file parts."""
    out: dict[str, Any] = {}
    files: dict[str, list[Part]] = {}
    for p in form.parts:
        if p.filename is not None:
            files.setdefault(p.name, []).append(p)
        elif p.name.endswith("[]"):
            out.setdefault(p.name[:-2], []).append(p.text())
        else:
            out[p.name] = p.text()
    out[FILES] = files
    return out
