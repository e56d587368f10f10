"""Model endpoints beyond chat and embeddings: ``/v1/completions``, ``/v1/moderations``,
``/v1/images/*``, ``/v1/audio/*`` and ``/v1/rerank``.

Each is routed like chat — by model, to the channels that serve that part of the API
(``providers/surfaces.py``) — billed by what it consumes (``billing/stage.py`` ``MEASURE``:
tokens, images by size and quality, seconds of audio, characters of speech), and passed
through as the upstream answers (``relay/passthrough.py``). Uploads (image edits and
variations, transcriptions, translations) are read as streamed multipart forms
(``relay/multipart.py``) and sent on from their spool files. Field checks live in
``relay/surface_checks.py``.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from typing import Any

import orjson

from relaygate.asgi import Request
from relaygate.billing.media import Measure
from relaygate.billing.stage import MEASURE, METER, RESERVATION
from relaygate.billing.tokens import count_text
from relaygate.context import RelayContext
from relaygate.providers.base import Adaptor, Target, Usage
from relaygate.providers.surfaces import SurfaceCall
from relaygate.relay import surface_checks as checks
from relaygate.relay.attempt import Call
from relaygate.relay.multipart import Form, read_form
from relaygate.relay.passthrough import Reply, exchange
from relaygate.relay.pipeline import relay_request
from relaygate.state import AppState

__all__ = ["SURFACE_ROUTES"]

log = logging.getLogger("relaygate")

Handler = Callable[[AppState, Request], Any]


def _usage_of(obj: dict[str, Any]) -> Usage | None:
    """Usage in OpenAI's shapes: chat-style tokens, ``input_tokens``/``output_tokens``
    (images, transcriptions), or a rerank's ``total_tokens``."""
    raw = obj.get("usage")
    if not isinstance(raw, dict):
        return None

    def num(name: str) -> int:
        v = raw.get(name)
        return v if isinstance(v, int) and not isinstance(v, bool) and v > 0 else 0

    prompt = num("prompt_tokens") or num("input_tokens")
    completion = num("completion_tokens") or num("output_tokens")
    if not prompt and not completion:
        prompt = num("total_tokens")
    if not prompt and not completion:
        return None
    return Usage(
        prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion
    )


# ---- the shared skeleton ----------------------------------------------------------------
async def _relay(
    state: AppState,
    req: Request,
    endpoint: str,
    surface: str,
    path: str,
    check: Callable[[RelayContext, dict[str, Any]], None],
    reply_for: Callable[[RelayContext, dict[str, Any]], Reply],
    *,
    form: bool = False,
) -> None:
    ctx = RelayContext(req.request_id, endpoint, client_ip=req.client_ip)
    uploaded: list[Form] = []

    async def parse_form(state: AppState, req: Request) -> dict[str, Any]:
        s = state.settings
        got = await read_form(req, s.max_upload_bytes, s.body_timeout)
        uploaded.append(got)
        return checks.form_fields(got)

    def make_call(body: dict[str, Any]) -> Call:
        reply = reply_for(ctx, body)

        async def call(adaptor: Adaptor, target: Target) -> None:
            if uploaded:
                sent = uploaded[0]
                sent.set_text("model", target.upstream_model)
                ctype, length, chunks = sent.encode()
                sc = SurfaceCall("POST", path, stream=chunks, content_type=ctype, length=length)
            else:
                sc = SurfaceCall("POST", path, json=body)
            await exchange(state, req, ctx, adaptor, target, sc, reply)

        return call

    try:
        if form:
            await relay_request(
                state, req, ctx, check, make_call, parse=parse_form, surface=surface
            )
        else:
            await relay_request(state, req, ctx, check, make_call, surface=surface)
    finally:
        for f in uploaded:
            f.close()


def _json_reply(
    ctx: RelayContext,
    measure: Callable[[dict[str, Any]], Measure | None],
    on_usage: Callable[[], None] | None = None,
) -> Reply:
    """A JSON answer: its usage (or the local count) and its measure are what is charged.
    A streamed answer (GPT image and transcription streams): the usage an event reports
    (its last one), then ``on_usage``; the measure stays the one made before the call."""

    async def on_json(obj: dict[str, Any], target: Target) -> None:
        ctx.usage = _usage_of(obj)
        m = measure(obj)
        if m is not None:
            ctx.put(MEASURE, m)

    def on_event(event: str | None, data: bytes) -> bool:
        if b'"usage"' in data and data.startswith(b"{"):
            with contextlib.suppress(orjson.JSONDecodeError):
                obj = orjson.loads(data)
                usage = _usage_of(obj) if isinstance(obj, dict) else None
                if usage is not None:
                    ctx.usage = usage
                    if on_usage is not None:
                        on_usage()
        return True

    return Reply(on_json=on_json, on_event=on_event)


# ---- completions --------------------------------------------------------------------------
def _completions_reply(ctx: RelayContext, body: dict[str, Any]) -> Reply:
    if not ctx.stream:

        async def on_json(obj: dict[str, Any], target: Target) -> None:
            usage = _usage_of(obj)
            if usage is None:  # an upstream that reports none: counted here
                res = ctx.get(RESERVATION)
                prompt = res.prompt_tokens if res is not None else 0
                completion = sum(
                    count_text(c["text"])
                    for c in obj.get("choices") or ()
                    if isinstance(c, dict) and isinstance(c.get("text"), str)
                )
                usage = Usage(prompt, completion, prompt + completion)
            ctx.usage = usage

        return Reply(on_json=on_json)
    wants_usage = ctx.include_usage
    meter = ctx.get(METER)

    def on_event(event: str | None, data: bytes) -> bool:
        if data == b"[DONE]" or not data.startswith(b"{"):
            return True
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError:
            return True
        if not isinstance(chunk, dict):
            return True
        usage = _usage_of(chunk)
        if usage is not None:
            ctx.usage = usage
        text = 0
        for choice in chunk.get("choices") or ():
            if isinstance(choice, dict) and isinstance(choice.get("text"), str):
                text += count_text(choice["text"])
        if meter is not None:
            meter.chunks += 1
            meter.tokens += text
        # a usage-only chunk the gateway asked for, not the client: dropped
        return wants_usage or usage is None or bool(chunk.get("choices"))

    return Reply(on_event=on_event)


def _completions_check(ctx: RelayContext, body: dict[str, Any]) -> None:
    checks.completions(ctx, body)
    if ctx.stream:
        options = body.get("stream_options")
        merged = dict(options) if isinstance(options, dict) else {}
        merged["include_usage"] = True  # the upstream's own count is what is billed
        body["stream_options"] = merged


async def handle_completions(state: AppState, req: Request) -> None:
    await _relay(
        state, req, "completions", "completions", "/completions",
        _completions_check, _completions_reply,
    )  # fmt: skip


# ---- moderations and rerank ------------------------------------------------------------
async def handle_moderations(state: AppState, req: Request) -> None:
    await _relay(
        state, req, "moderations", "moderations", "/moderations",
        checks.moderations, lambda ctx, body: _json_reply(ctx, lambda obj: None),
    )  # fmt: skip


def _rerank_reply(ctx: RelayContext, body: dict[str, Any]) -> Reply:
    local = checks.rerank_tokens(body)

    async def on_json(obj: dict[str, Any], target: Target) -> None:
        usage = _usage_of(obj)
        ctx.usage = usage or Usage(prompt_tokens=local, total_tokens=local)

    return Reply(on_json=on_json)


async def handle_rerank(state: AppState, req: Request) -> None:
    await _relay(state, req, "rerank", "rerank", "/rerank", checks.rerank, _rerank_reply)


# ---- images ------------------------------------------------------------------------------
def _images_reply(ctx: RelayContext, body: dict[str, Any]) -> Reply:
    estimate = ctx.get(MEASURE) or Measure()

    def measure(obj: dict[str, Any]) -> Measure:
        data = obj.get("data")
        made = len(data) if isinstance(data, list) else 0
        if ctx.usage is not None and checks.token_priced(ctx):
            made = 0  # gpt-image-1 style: the reported tokens are the bill
        return Measure(images=made, size=estimate.size, quality=estimate.quality)

    def streamed_tokens() -> None:
        if checks.token_priced(ctx):  # as above: the streamed tokens are the bill
            ctx.put(MEASURE, Measure(size=estimate.size, quality=estimate.quality))

    return _json_reply(ctx, measure, streamed_tokens)


async def handle_image_generations(state: AppState, req: Request) -> None:
    await _relay(
        state, req, "images.generations", "images", "/images/generations",
        checks.image_generation, _images_reply,
    )  # fmt: skip


async def handle_image_edits(state: AppState, req: Request) -> None:
    await _relay(
        state, req, "images.edits", "images", "/images/edits",
        checks.image_edit, _images_reply, form=True,
    )  # fmt: skip


async def handle_image_variations(state: AppState, req: Request) -> None:
    await _relay(
        state, req, "images.variations", "images", "/images/variations",
        checks.image_variation, _images_reply, form=True,
    )  # fmt: skip


# ---- audio -------------------------------------------------------------------------------
def _audio_reply(ctx: RelayContext, body: dict[str, Any]) -> Reply:
    local = ctx.get(MEASURE) or Measure()

    def measure(obj: dict[str, Any]) -> Measure:
        seconds = checks.reported_seconds(obj)
        if seconds is None:
            return local  # measured from the upload (relay/surface_checks.py)
        return Measure(milliseconds=round(seconds * 1000))

    return _json_reply(ctx, measure)  # text, srt and vtt answers: the local measure


async def handle_transcriptions(state: AppState, req: Request) -> None:
    await _relay(
        state, req, "audio.transcriptions", "audio", "/audio/transcriptions",
        checks.transcription, _audio_reply, form=True,
    )  # fmt: skip


async def handle_translations(state: AppState, req: Request) -> None:
    await _relay(
        state, req, "audio.translations", "audio", "/audio/translations",
        checks.transcription, _audio_reply, form=True,
    )  # fmt: skip


async def handle_speech(state: AppState, req: Request) -> None:
    await _relay(
        state, req, "audio.speech", "audio", "/audio/speech",
        checks.speech, lambda ctx, body: Reply(),
    )  # fmt: skip


SURFACE_ROUTES: dict[str, Handler] = {
    "/v1/completions": handle_completions,
    "/v1/moderations": handle_moderations,
    "/v1/rerank": handle_rerank,
    "/v1/images/generations": handle_image_generations,
    "/v1/images/edits": handle_image_edits,
    "/v1/images/variations": handle_image_variations,
    "/v1/audio/transcriptions": handle_transcriptions,
    "/v1/audio/translations": handle_translations,
    "/v1/audio/speech": handle_speech,
}
