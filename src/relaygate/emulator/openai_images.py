"""OpenAI images: ``POST /images/generations`` (JSON), ``/images/edits`` and
``/images/variations`` (multipart) for the OpenAI emulator family.

Models fall in four families with OpenAI's rules:
``dall-e-2`` (sizes 256/512/1024 squares, quality ``standard``/``auto``, prompt ≤ 1000),
``dall-e-3`` (1024x1024, 1792x1024, 1024x1792; ``standard``/``hd``/``auto``; ``n`` = 1;
prompt ≤ 4000; a ``revised_prompt``), the GPT image models (``gpt-image-*``,
``chatgpt-image-latest``: 1024x1024, 1536x1024, 1024x1536, ``auto`` (``gpt-image-2*`` also any
WxH with both sides multiples of 16, aspect 1:3..3:1, at most 3840x2160 pixels);
``low``/``medium``/``high``/``auto``; always base64, ``response_format`` refused as an unknown
parameter; ``usage`` tokens), and any other name (an OpenAI-compatible vendor's model or an
``error-…``/``hang`` trigger), checked loosely. Bad values answer 400 in OpenAI's wording.

Every image is the same tiny real PNG (8x8, one colour from the prompt), whatever the size or
``output_format``; ``url`` answers point at ``https://images.emulator.invalid/<id>.png``.
GPT image usage: input = prompt tokens (~4 characters each) + 765 per input image (edits);
output per image = OpenAI's table (1024x1024 low 272, medium 1056, high 4160; the two
rectangles 400/1568/6208 and 408/1584/6240), other sizes scaled by pixels, ``auto`` = 1024x1024
``medium``. ``stream`` (GPT image models) sends ``partial_images`` partial events then the
completed one (``image_generation.*`` or ``image_edit.*``), SSE with ``event:`` lines.
"""

from __future__ import annotations

import base64
import hashlib
import re
import struct
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import orjson
from aiohttp import web

from relaygate.emulator.base import StreamPlan, count_tokens
from relaygate.emulator.bodies import Form, Upload
from relaygate.emulator.knobs import Knobs
from relaygate.emulator.openai_params import (
    Host,
    bad_request,
    get_choice,
    get_int,
    json_object,
    max_length,
    required,
)

__all__ = ["image_edits", "image_generations", "image_variations", "tiny_png"]

_SIZES = {
    "dall-e-2": ("256x256", "512x512", "1024x1024"),
    "dall-e-3": ("1024x1024", "1792x1024", "1024x1792"),
    "gpt": ("1024x1024", "1536x1024", "1024x1536", "auto"),
}
_QUALITIES = {
    "dall-e-2": ("standard", "auto"),
    "dall-e-3": ("standard", "hd", "auto"),
    "gpt": ("low", "medium", "high", "auto"),
}
_PROMPT_MAX = {"dall-e-2": 1000, "dall-e-3": 4000, "gpt": 32000}
_OUTPUT_TOKENS = {
    "1024x1024": {"low": 272, "medium": 1056, "high": 4160},
    "1536x1024": {"low": 400, "medium": 1568, "high": 6208},
    "1024x1536": {"low": 408, "medium": 1584, "high": 6240},
}
_EDIT_MODELS = ("dall-e-2", "gpt-image-1", "gpt-image-1-mini", "gpt-image-1.5", "gpt-image-2")
_IMAGE_TOKENS = 765  # per input image of an edit
_MAX_PIXELS = 3840 * 2160
_DALLE2_MAX_BYTES = 4 * 1024 * 1024
_WXH = re.compile(r"^(\d{1,5})x(\d{1,5})$")


def _family(model: str) -> str:
    if model in ("dall-e-2", "dall-e-3"):
        return model
    if model.startswith("gpt-image") or model.startswith("chatgpt-image"):
        return "gpt"
    return "other"


@lru_cache(maxsize=256)
def tiny_png(seed: str) -> bytes:
    """A real 8x8 RGB PNG of one colour derived from ``seed``."""
    rgb = hashlib.blake2b(seed.encode(), digest_size=3).digest()
    raw = b"".join(b"\x00" + rgb * 8 for _ in range(8))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", 8, 8, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


@dataclass(frozen=True, slots=True)
class _Params:
    model: str
    family: str
    prompt: str
    n: int
    size: str
    quality: str
    response_format: str  # "url" | "b64_json"
    output_format: str
    background: str
    stream: bool
    partial_images: int


def _check_size(host: Host, model: str, family: str, size: str) -> None:
    m = _WXH.match(size)
    if family == "other":
        if size != "auto" and not m:
            raise bad_request(host, f"Invalid size '{size}'.", "size", "invalid_value")
        return
    if size in _SIZES[family]:
        return
    if model.startswith("gpt-image-2") and m:
        w, h = int(m.group(1)), int(m.group(2))
        if w % 16 == 0 and h % 16 == 0 and w * h <= _MAX_PIXELS and 1 / 3 <= w / h <= 3:
            return
        raise bad_request(
            host,
            f"Invalid size '{size}': width and height must be multiples of 16, the aspect ratio "
            "between 1:3 and 3:1 and the resolution at most 3840x2160.",
            "size",
            "invalid_value",
        )
    get_choice(host, size, "size", _SIZES[family], None)


def _params(host: Host, get: Callable[[str], Any], model: str, prompt: str) -> _Params:
    """The generation parameters, checked for ``model``'s family."""
    family = _family(model)
    if family in _PROMPT_MAX:
        max_length(host, prompt, "prompt", _PROMPT_MAX[family])
    n = get_int(host, get("n"), "n", 1, 1 if family == "dall-e-3" else 10, 1)
    size = get("size") or ("auto" if family == "gpt" else "1024x1024")
    _check_size(host, model, family, str(size))
    quality = get("quality") or "auto"
    if family in _QUALITIES:
        get_choice(host, quality, "quality", _QUALITIES[family], None)
    fmt = get("response_format")
    if family == "gpt" and fmt is not None:
        raise bad_request(
            host, "Unknown parameter: 'response_format'.", "response_format", "unknown_parameter"
        )
    fmt = get_choice(host, fmt, "response_format", ("url", "b64_json"), "url")
    output = get_choice(host, get("output_format"), "output_format", ("png", "jpeg", "webp"), "png")
    background = get_choice(
        host, get("background"), "background", ("transparent", "opaque", "auto"), "auto"
    )
    if family == "dall-e-3":
        get_choice(host, get("style"), "style", ("vivid", "natural"), "vivid")
    stream = get("stream") in (True, "true", "True")
    if stream and family not in ("gpt", "other"):
        raise bad_request(
            host, f"Streaming is not supported for model '{model}'.", "stream", "invalid_value"
        )
    partial = get_int(host, get("partial_images"), "partial_images", 0, 3, 0)
    return _Params(
        model,
        family,
        prompt,
        n,
        str(size),
        str(quality),
        "b64_json" if family == "gpt" else str(fmt),
        str(output),
        str(background),
        stream,
        partial,
    )


def _usage(p: _Params, input_images: int) -> dict[str, Any]:
    size = "1024x1024" if p.size == "auto" else p.size
    quality = "medium" if p.quality not in ("low", "medium", "high") else p.quality
    table = _OUTPUT_TOKENS.get(size)
    if table is not None:
        per_image = table[quality]
    else:
        m = _WXH.match(size)
        pixels = int(m.group(1)) * int(m.group(2)) if m else 1024 * 1024
        per_image = round(_OUTPUT_TOKENS["1024x1024"][quality] * pixels / (1024 * 1024))
    text = count_tokens(p.prompt)
    image = _IMAGE_TOKENS * input_images
    output = per_image * p.n
    return {
        "total_tokens": text + image + output,
        "input_tokens": text + image,
        "output_tokens": output,
        "input_tokens_details": {"text_tokens": text, "image_tokens": image},
    }


def _resolved(p: _Params) -> dict[str, str]:
    """The settings a GPT image answer reports (``auto`` resolved)."""
    return {
        "background": "opaque" if p.background == "auto" else p.background,
        "output_format": p.output_format,
        "size": "1024x1024" if p.size == "auto" else p.size,
        "quality": "medium" if p.quality == "auto" else p.quality,
    }


async def _answer(
    host: Host, request: web.Request, knobs: Knobs, p: _Params, input_images: int, kind: str
) -> web.StreamResponse:
    trigger = await host.gate(knobs, p.model)
    created = int(time.time())
    png = base64.b64encode(tiny_png(p.prompt)).decode()
    if p.stream:
        return await host.send_stream(
            request, knobs, _stream_plan(host, p, input_images, kind, created, png), trigger
        )
    data: list[dict[str, Any]] = []
    for _ in range(p.n):
        item: dict[str, Any] = (
            {"b64_json": png}
            if p.response_format == "b64_json"
            else {"url": f"https://images.emulator.invalid/{host.core.ids('img-')}.png"}
        )
        if p.family == "dall-e-3":
            item["revised_prompt"] = p.prompt
        data.append(item)
    payload: dict[str, Any] = {"created": created, "data": data}
    if p.family == "gpt":
        payload.update(_resolved(p), usage=_usage(p, input_images))
    return await host.send_json(request, knobs, payload)


def _stream_plan(
    host: Host, p: _Params, input_images: int, kind: str, created: int, png: str
) -> StreamPlan:
    settings = {"created_at": created, **_resolved(p)}

    def event(name: str, **fields: Any) -> bytes:
        obj = {"type": f"{kind}.{name}", "b64_json": png, **settings, **fields}
        return f"event: {kind}.{name}\ndata: ".encode() + orjson.dumps(obj) + b"\n\n"

    chunks = [event("partial_image", partial_image_index=i) for i in range(p.partial_images)]
    done = event("completed", usage=_usage(p, input_images))
    return StreamPlan(b"", chunks, done, host.midstream_error_frame())


async def image_generations(
    host: Host, request: web.Request, knobs: Knobs, body: Any
) -> web.StreamResponse:
    """``POST /images/generations`` (JSON)."""
    body = json_object(host, body)
    prompt = required(host, body.get("prompt"), "prompt")
    if not isinstance(prompt, str):
        raise bad_request(host, "Invalid type for 'prompt': expected a string.", "prompt")
    model = body.get("model") or "dall-e-2"
    if not isinstance(model, str):
        raise bad_request(host, "Invalid type for 'model': expected a string.", "model")
    p = _params(host, body.get, model, prompt)
    return await _answer(host, request, knobs, p, 0, "image_generation")


def _kind_of(data: bytes) -> str | None:
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return None


def _dalle2_png(host: Host, image: Upload, param: str) -> None:
    if _kind_of(image.data) != "png" or len(image.data) >= _DALLE2_MAX_BYTES:
        raise bad_request(host, "Uploaded image must be a PNG and less than 4 MB.", param)


async def image_edits(
    host: Host, request: web.Request, knobs: Knobs, form: Form
) -> web.StreamResponse:
    """``POST /images/edits`` (multipart: ``image`` or ``image[]`` files, ``mask``, …)."""
    images = form.uploads("image", "image[]")
    if not images:
        required(host, None, "image")
    prompt = required(host, form.text("prompt"), "prompt")
    model = form.text("model") or "gpt-image-1.5"
    family = _family(model)
    if family == "dall-e-3":
        get_choice(host, model, "model", _EDIT_MODELS, None)
    if family == "dall-e-2":
        if len(images) > 1:
            raise bad_request(
                host, "dall-e-2 accepts only one image to edit.", "image", "invalid_value"
            )
        _dalle2_png(host, images[0], "image")
    elif len(images) > 16:
        raise bad_request(host, "You can provide up to 16 images.", "image", "invalid_value")
    else:
        for i, image in enumerate(images, 1):
            if _kind_of(image.data) is None:
                raise bad_request(
                    host,
                    f"Invalid image file or mode for image {i}, please check your image file.",
                    "image",
                )
    for mask in form.uploads("mask"):
        if _kind_of(mask.data) != "png":
            raise bad_request(host, "Invalid mask image format - mask must be a PNG.", "mask")
    p = _params(host, form.text, model, prompt)
    return await _answer(host, request, knobs, p, len(images), "image_edit")


async def image_variations(
    host: Host, request: web.Request, knobs: Knobs, form: Form
) -> web.StreamResponse:
    """``POST /images/variations`` (multipart: one ``image`` file; ``dall-e-2`` only)."""
    images = form.uploads("image")
    if not images:
        required(host, None, "image")
    model = form.text("model") or "dall-e-2"
    family = _family(model)
    if family != "other":
        get_choice(host, model, "model", ("dall-e-2",), None)
    if len(images) > 1:
        raise bad_request(host, "Only one image can be varied.", "image", "invalid_value")
    _dalle2_png(host, images[0], "image")
    if form.text("prompt") is not None:
        raise bad_request(host, "Unknown parameter: 'prompt'.", "prompt", "unknown_parameter")
    p = _params(host, form.text, model, images[0].filename)
    return await _answer(host, request, knobs, p, 1, "image_generation")
