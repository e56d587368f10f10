"""OpenAI text-to-speech: ``POST /audio/speech`` for the OpenAI emulator family.

The audio lasts ``len(input) / (15 × speed)`` seconds (15 characters a second) and is
:func:`speech_audio`: ``wav`` a real 24 kHz 16-bit mono WAV of silence, ``pcm`` the same
samples headerless (OpenAI's raw format), ``mp3`` real silent MPEG-1 layer III frames
(128 kbit/s, 44.1 kHz), ``opus``/``aac``/``flac`` their format's magic bytes then zeros at
32/96/288 kbit/s (sized right, not decodable). It goes out chunked, in ``chunks`` knob pieces
paced like a stream, with OpenAI's ``Content-Type``. ``stream_format=sse`` (not for
``tts-1``/``tts-1-hd``) sends ``speech.audio.delta`` events (base64 pieces) then
``speech.audio.done`` with usage (input: the input's tokens, ~4 characters each; output:
ceil(10 × seconds)). An audio stream has no in-stream error: ``midstream_error`` and the
``error-midstream`` model cut it after its first piece instead.

Refusals as OpenAI's: ``input`` over 4096 characters, an unknown ``voice``,
``response_format``, ``speed`` outside 0.25..4.
"""

from __future__ import annotations

import base64
import dataclasses
import math
import struct
from typing import Any

import orjson
from aiohttp import web

from relaygate.emulator.base import StreamPlan, count_tokens
from relaygate.emulator.knobs import Knobs
from relaygate.emulator.openai_params import (
    Host,
    bad_request,
    get_choice,
    get_number,
    json_object,
    max_length,
    need_model,
    required,
)

__all__ = ["CHARS_PER_SECOND", "speech", "speech_audio", "speech_seconds"]

CHARS_PER_SECOND = 15
MAX_INPUT = 4096
VOICES = (
    "alloy",
    "ash",
    "ballad",
    "coral",
    "echo",
    "fable",
    "onyx",
    "nova",
    "sage",
    "shimmer",
    "verse",
    "marin",
    "cedar",
)
CONTENT_TYPES = {
    "mp3": "audio/mpeg",
    "opus": "audio/opus",
    "aac": "audio/aac",
    "flac": "audio/flac",
    "wav": "audio/wav",
    "pcm": "audio/pcm",
}
_RATE = 24_000  # wav/pcm samples a second (16-bit mono)
_MP3_FRAME = b"\xff\xfb\x90\x64" + bytes(413)  # 128 kbit/s, 44.1 kHz, 417 bytes, 1152 samples
_OTHER = {  # magic, bytes a second
    "opus": (b"OggS\x00\x02" + bytes(20) + b"\x01\x13OpusHead", 4_000),
    "aac": (b"\xff\xf1\x50\x80", 12_000),
    "flac": (b"fLaC\x00\x00\x00\x22", 36_000),
}


def speech_seconds(text: str, speed: float = 1.0) -> float:
    """How long the speech of ``text`` lasts."""
    return len(text) / (CHARS_PER_SECOND * speed)


def _wav_header(data_bytes: int) -> bytes:
    fmt = struct.pack("<HHIIHH", 1, 1, _RATE, _RATE * 2, 2, 16)
    return (
        b"RIFF"
        + struct.pack("<I", 36 + data_bytes)
        + b"WAVEfmt "
        + struct.pack("<I", len(fmt))
        + fmt
        + b"data"
        + struct.pack("<I", data_bytes)
    )


def speech_audio(fmt: str, seconds: float) -> bytes:
    """``seconds`` of silent audio in ``fmt`` (see the module docstring)."""
    if fmt in ("wav", "pcm"):
        samples = bytes(2 * max(1, round(seconds * _RATE)))
        return _wav_header(len(samples)) + samples if fmt == "wav" else samples
    if fmt == "mp3":
        return _MP3_FRAME * max(1, math.ceil(seconds * 44_100 / 1152))
    magic, rate = _OTHER[fmt]
    return magic + bytes(max(0, round(seconds * rate) - len(magic)))


def _pieces(data: bytes, n: int) -> list[bytes]:
    n = max(1, min(n, len(data)))
    return [data[len(data) * i // n : len(data) * (i + 1) // n] for i in range(n)]


def _voice(host: Host, voice: Any) -> None:
    if isinstance(voice, dict) and isinstance(voice.get("id"), str):
        return
    required(host, voice, "voice")
    get_choice(host, voice, "voice", VOICES, None)


async def speech(host: Host, request: web.Request, knobs: Knobs, body: Any) -> web.StreamResponse:
    """``POST /audio/speech``: binary audio (or SSE events) of ``input``."""
    body = json_object(host, body)
    model = need_model(host, body.get("model"))
    text = required(host, body.get("input"), "input")
    if not isinstance(text, str):
        raise bad_request(host, "Invalid type for 'input': expected a string.", "input")
    max_length(host, text, "input", MAX_INPUT)
    _voice(host, body.get("voice"))
    fmt = get_choice(
        host, body.get("response_format"), "response_format", tuple(CONTENT_TYPES), "mp3"
    )
    speed = get_number(host, body.get("speed"), "speed", 0.25, 4.0, 1.0)
    sse = get_choice(host, body.get("stream_format"), "stream_format", ("sse", "audio"), "audio")
    if sse == "sse" and model in ("tts-1", "tts-1-hd"):
        raise bad_request(
            host,
            f"stream_format 'sse' is not supported for model '{model}'.",
            "stream_format",
            "unsupported_value",
        )
    trigger = await host.gate(knobs, model)
    seconds = speech_seconds(text, speed)
    audio = speech_audio(str(fmt), seconds)
    pieces = _pieces(audio, knobs.chunks)
    if sse == "sse":
        return await host.send_stream(
            request, knobs, _sse_plan(host, text, seconds, pieces), trigger
        )
    if trigger == "midstream" or knobs.midstream_error:
        trigger = "cut"
        knobs = dataclasses.replace(knobs, midstream_error=False)
    plan = StreamPlan(b"", pieces, b"", b"")
    headers = {"Content-Type": CONTENT_TYPES[str(fmt)]}
    return await host.send_stream(request, knobs, plan, trigger, headers)


def _sse_plan(host: Host, text: str, seconds: float, pieces: list[bytes]) -> StreamPlan:
    def event(obj: dict[str, Any]) -> bytes:
        return b"data: " + orjson.dumps(obj) + b"\n\n"

    chunks = [
        event({"type": "speech.audio.delta", "audio": base64.b64encode(p).decode()}) for p in pieces
    ]
    inp, out = count_tokens(text), math.ceil(seconds * 10)
    usage = {"input_tokens": inp, "output_tokens": out, "total_tokens": inp + out}
    done = event({"type": "speech.audio.done", "usage": usage})
    return StreamPlan(b"", chunks, done, host.midstream_error_frame())
