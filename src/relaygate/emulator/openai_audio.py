"""OpenAI speech-to-text: ``POST /audio/transcriptions`` and ``/audio/translations`` (multipart).

The uploaded ``file`` is read: a WAV file (the stdlib ``wave`` reads it) lasts its frames over
its frame rate; anything else lasts its byte size over 16000 bytes per second (a 128 kbit/s
stream; :func:`audio_duration`). Under 0.1 s is OpenAI's ``audio_too_short`` 400; over 25 MB
a 413; a file name without an audio extension OpenAI's ``Invalid file format`` 400.

The text is the ``reply`` knob. ``response_format``: ``json`` (``text`` and, for
transcriptions, ``usage``), ``text``, ``srt``, ``vtt`` (plain text), ``verbose_json``
(``task``, ``language``, ``duration``, ``text``, ``segments``, ``words`` when
``timestamp_granularities[]`` asks, ``usage``) and ``diarized_json`` (the ``-diarize`` model).
Segments split the text evenly over the duration, one per started 30 s. Transcription usage:
``whisper-1`` (and any model not named ``gpt-…``) ``{"type": "duration", "seconds": ceil(d)}``;
the ``gpt-…transcribe`` models token usage: audio tokens = ceil(10 × seconds), text tokens
of the ``prompt``, output tokens of the text (~4 characters each). Those models accept only
``json`` and ``text`` (``diarized_json`` too for ``-diarize``) and stream with ``stream=true``
(``transcript.text.delta`` events, one per ``chunks`` piece, then ``transcript.text.done``
with the usage); ``whisper-1`` ignores ``stream`` as OpenAI does.
"""

from __future__ import annotations

import io
import math
import wave
from typing import Any

import orjson
from aiohttp import web

from relaygate.emulator.base import Provider, StreamPlan, count_tokens, split_text
from relaygate.emulator.bodies import Form
from relaygate.emulator.knobs import Knobs
from relaygate.emulator.openai_params import (
    Host,
    bad_request,
    get_choice,
    get_number,
    need_model,
    required,
)

__all__ = ["BYTES_PER_SECOND", "audio_duration", "transcriptions", "translations"]

#: the byte rule for audio that is not WAV: a 128 kbit/s stream
BYTES_PER_SECOND = 16_000
AUDIO_EXTENSIONS = ("flac", "m4a", "mp3", "mp4", "mpeg", "mpga", "oga", "ogg", "wav", "webm")
MAX_FILE_BYTES = 25 * 1024 * 1024
_FORMATS = ("json", "text", "srt", "verbose_json", "vtt")
_LANGUAGES = {
    "en": "english",
    "de": "german",
    "fr": "french",
    "es": "spanish",
    "it": "italian",
    "pt": "portuguese",
    "nl": "dutch",
    "ja": "japanese",
    "zh": "chinese",
    "ko": "korean",
    "ru": "russian",
}
_TEXT_CT = "text/plain; charset=utf-8"


def audio_duration(data: bytes) -> float:
    """Seconds of audio in ``data``: a WAV's frames / rate, else bytes / ``BYTES_PER_SECOND``."""
    if data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        try:
            with wave.open(io.BytesIO(data)) as wav:
                return float(wav.getnframes() / wav.getframerate())
        except (wave.Error, EOFError, ZeroDivisionError):
            pass
    return len(data) / BYTES_PER_SECOND


def _token_model(model: str) -> bool:
    return model.startswith("gpt-")


def _segments(text: str, duration: float) -> list[dict[str, Any]]:
    pieces = split_text(text, max(1, math.ceil(duration / 30))) or ("",)
    out = []
    for i, piece in enumerate(pieces):
        start = round(duration * i / len(pieces), 2)
        end = round(duration * (i + 1) / len(pieces), 2)
        out.append(
            {
                "id": i,
                "seek": int(start * 100),
                "start": start,
                "end": end,
                "text": piece,
                "tokens": list(range(50364, 50364 + count_tokens(piece))),
                "temperature": 0.0,
                "avg_logprob": -0.25,
                "compression_ratio": 1.2,
                "no_speech_prob": 0.01,
            }
        )
    return out


def _words(text: str, duration: float) -> list[dict[str, Any]]:
    words = text.split()
    step = duration / max(len(words), 1)
    return [
        {"word": w, "start": round(i * step, 2), "end": round((i + 1) * step, 2)}
        for i, w in enumerate(words)
    ]


def _stamp(seconds: float, sep: str) -> str:
    ms = round(seconds * 1000)
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, ms = divmod(rest, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def _subtitles(segments: list[dict[str, Any]], vtt: bool) -> str:
    blocks = []
    for seg in segments:
        span = f"{_stamp(seg['start'], '.' if vtt else ',')} --> "
        span += _stamp(seg["end"], "." if vtt else ",")
        text = seg["text"].strip()
        blocks.append(f"{span}\n{text}\n" if vtt else f"{seg['id'] + 1}\n{span}\n{text}\n")
    return ("WEBVTT\n\n" if vtt else "") + "\n".join(blocks) + "\n"


def _usage(model: str, duration: float, prompt: str, text: str) -> dict[str, Any]:
    if not _token_model(model):
        return {"type": "duration", "seconds": math.ceil(duration)}
    audio = math.ceil(duration * 10)
    prompt_tokens = count_tokens(prompt)
    output = count_tokens(text)
    return {
        "type": "tokens",
        "input_tokens": audio + prompt_tokens,
        "input_token_details": {"text_tokens": prompt_tokens, "audio_tokens": audio},
        "output_tokens": output,
        "total_tokens": audio + prompt_tokens + output,
    }


async def _send_text(knobs: Knobs, text: str) -> web.Response:
    await Provider.delay(knobs, first_token=True)
    return web.Response(body=text.encode(), headers={"Content-Type": _TEXT_CT})


def _read_file(host: Host, form: Form) -> tuple[str, float]:
    """The upload's name and duration, refused as OpenAI refuses it."""
    files = form.uploads("file")
    if not files:
        required(host, None, "file")
    upload = files[0]
    if len(upload.data) > MAX_FILE_BYTES:
        raise bad_request(
            host,
            f"Maximum content size limit ({MAX_FILE_BYTES}) exceeded ({len(upload.data)} bytes "
            "read)",
            status=413,
        )
    ext = upload.filename.rsplit(".", 1)[-1].lower() if "." in upload.filename else ""
    if ext not in AUDIO_EXTENSIONS:
        raise bad_request(
            host, f"Invalid file format. Supported formats: {list(AUDIO_EXTENSIONS)}", "file"
        )
    duration = audio_duration(upload.data)
    if duration < 0.1:
        raise bad_request(
            host,
            "Audio file is too short. Minimum audio length is 0.1 seconds.",
            "file",
            "audio_too_short",
        )
    return upload.filename, duration


async def transcriptions(
    host: Host, request: web.Request, knobs: Knobs, form: Form
) -> web.StreamResponse:
    """``POST /audio/transcriptions``."""
    return await _speech_to_text(host, request, knobs, form, translate=False)


async def translations(
    host: Host, request: web.Request, knobs: Knobs, form: Form
) -> web.StreamResponse:
    """``POST /audio/translations`` (the text is the English one: language ``english``)."""
    return await _speech_to_text(host, request, knobs, form, translate=True)


async def _speech_to_text(
    host: Host, request: web.Request, knobs: Knobs, form: Form, *, translate: bool
) -> web.StreamResponse:
    _, duration = _read_file(host, form)
    model = need_model(host, form.text("model"))
    formats: tuple[str, ...] = _FORMATS
    if not translate and _token_model(model):
        formats = ("json", "text", "diarized_json") if "diarize" in model else ("json", "text")
    fmt = get_choice(
        host, form.text("response_format"), "response_format", (*_FORMATS, "diarized_json"), "json"
    )
    if fmt not in formats:
        raise bad_request(
            host,
            f"response_format '{fmt}' is not compatible with model '{model}'. Use "
            + " or ".join(f"'{f}'" for f in formats)
            + " instead.",
            "response_format",
            "unsupported_value",
        )
    get_number(host, form.text("temperature"), "temperature", 0, 1, 0)
    prompt = form.text("prompt") or ""
    code = form.text("language") or "en"
    language = "english" if translate else _LANGUAGES.get(code, code)
    stream = form.text("stream") == "true" and not translate and _token_model(model)
    trigger = await host.gate(knobs, model)
    text = knobs.reply
    usage = _usage(model, duration, prompt, text)
    if stream:
        return await host.send_stream(request, knobs, _plan(host, knobs, text, usage), trigger)
    if fmt == "text":
        return await _send_text(knobs, text + "\n")
    segments = _segments(text, duration)
    if fmt in ("srt", "vtt"):
        return await _send_text(knobs, _subtitles(segments, fmt == "vtt"))
    payload: dict[str, Any] = {"text": text}
    if fmt == "verbose_json":
        grains = form.texts("timestamp_granularities[]", "timestamp_granularities")
        payload = {
            "task": "translate" if translate else "transcribe",
            "language": language,
            "duration": round(duration, 2),
            "text": text,
        }
        if "word" in grains:
            payload["words"] = _words(text, duration)
        if "segment" in grains or not grains:
            payload["segments"] = segments
    elif fmt == "diarized_json":
        payload = {
            "task": "transcribe",
            "duration": round(duration, 2),
            "text": text,
            "segments": [
                {
                    "type": "transcript.text.segment",
                    "id": f"seg_{s['id']:03d}",
                    "start": s["start"],
                    "end": s["end"],
                    "text": s["text"],
                    "speaker": "A",
                }
                for s in segments
            ],
        }
    if not translate:
        payload["usage"] = usage
    return await host.send_json(request, knobs, payload)


def _plan(host: Host, knobs: Knobs, text: str, usage: dict[str, Any]) -> StreamPlan:
    def event(obj: dict[str, Any]) -> bytes:
        return b"data: " + orjson.dumps(obj) + b"\n\n"

    chunks = [
        event({"type": "transcript.text.delta", "delta": p}) for p in split_text(text, knobs.chunks)
    ]
    done = event({"type": "transcript.text.done", "text": text, "usage": usage})
    return StreamPlan(b"", chunks, done, host.midstream_error_frame())
