"""``POST /v1/embeddings``: ask upstream for floats, encode base64 ourselves when the
client asked for it (the openai SDK asks by default; many upstreams only do floats)."""

from __future__ import annotations

import base64
import binascii
import sys
import time
from array import array
from typing import Any

from relaygate.asgi import Request, ok_body, send_json
from relaygate.billing.tokens import count_input
from relaygate.context import RelayContext
from relaygate.errors import InvalidRequest, UpstreamError
from relaygate.providers.base import Adaptor, Target, Usage
from relaygate.relay.attempt import Call, build_request, fetch
from relaygate.relay.pipeline import record, relay_request, require_model
from relaygate.state import AppState

__all__ = ["encode_base64", "handle_embeddings"]


def encode_base64(vector: list[float]) -> str:
    """Little-endian float32 bytes, base64 — what OpenAI returns for ``base64``."""
    arr = array("f", vector)
    if sys.byteorder != "little":  # pragma: no cover - every supported platform is LE
        arr.byteswap()
    return base64.b64encode(arr.tobytes()).decode("ascii")


def _validate(body: dict[str, Any]) -> tuple[str, str]:
    model = require_model(body)
    inp = body.get("input")
    ok = isinstance(inp, str) and inp != ""
    if isinstance(inp, list) and inp:
        ok = (
            all(isinstance(x, str) for x in inp)
            or all(isinstance(x, int) and not isinstance(x, bool) for x in inp)
            or all(isinstance(x, list) and x and all(isinstance(t, int) for t in x) for x in inp)
        )
    if not ok:
        raise InvalidRequest(
            "`input` must be a non-empty string, array of strings, or array of token arrays.",
            param="input",
        )
    fmt = body.get("encoding_format", "float")
    if fmt not in ("float", "base64"):
        raise InvalidRequest(
            "`encoding_format` must be 'float' or 'base64'.", param="encoding_format"
        )
    return model, str(fmt)


def _convert(obj: dict[str, Any], fmt: str) -> None:
    data = obj.get("data")
    if not isinstance(data, list):
        raise UpstreamError("The upstream provider returned malformed embeddings.")
    for item in data:
        if not isinstance(item, dict):
            raise UpstreamError("The upstream provider returned malformed embeddings.")
        vec = item.get("embedding")
        try:
            if fmt == "base64" and isinstance(vec, list):
                item["embedding"] = encode_base64(vec)
            elif fmt == "float" and isinstance(vec, str):
                arr = array("f")
                arr.frombytes(base64.b64decode(vec))
                item["embedding"] = arr.tolist()
        except (TypeError, ValueError, binascii.Error):
            raise UpstreamError("The upstream provider returned malformed embeddings.") from None


async def handle_embeddings(state: AppState, req: Request) -> None:
    ctx = RelayContext(req.request_id, "embeddings", client_ip=req.client_ip)
    fmt = "float"

    def validate(ctx: RelayContext, body: dict[str, Any]) -> None:
        nonlocal fmt
        ctx.model, fmt = _validate(body)

    def make_call(body: dict[str, Any]) -> Call:
        async def call(adaptor: Adaptor, target: Target) -> None:
            ureq = build_request(target, lambda: adaptor.embeddings_request(target, body))
            raw = await fetch(state, adaptor, target, ureq)
            obj, usage = adaptor.embeddings_response(target, raw)
            if usage is None:  # the upstream reported none (Gemini): count the input here
                prompt = count_input(body)
                usage = Usage(prompt_tokens=prompt, total_tokens=prompt)
                obj["usage"] = usage.to_openai()
            _convert(obj, fmt)
            ctx.claim(target)  # hedged: the first answer wins (relay/hedge.py)
            ctx.usage = usage
            ctx.first_byte_at = time.perf_counter()
            ctx.finished = True
            record(state, ctx)
            await send_json(req.send, 200, ok_body(obj, state.settings.envelope), req.request_id)

        return call

    await relay_request(state, req, ctx, validate, make_call)
