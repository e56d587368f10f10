"""``POST /v1/embeddings``: ask upstream for floats, encode base64 ourselves when the
client asked for it (the openai SDK asks by default; many upstreams only do floats)."""

from __future__ import annotations

import base64
import sys
from array import array
from typing import Any

from relaygate.asgi import Request, ok_body, send_json
from relaygate.context import RelayContext
from relaygate.errors import InvalidRequest, RelayError, UpstreamError
from relaygate.relay.pipeline import (
    authenticate,
    fail,
    finish,
    parse_json_body,
    require_model,
    run_watched,
)
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
            or all(isinstance(x, int) for x in inp)
            or all(isinstance(x, list) and all(isinstance(t, int) for t in x) for x in inp)
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


async def handle_embeddings(state: AppState, req: Request) -> None:
    ctx = RelayContext(req.request_id, "embeddings", client_ip=req.client_ip)
    try:
        authenticate(state, req, ctx)
        body = await parse_json_body(state, req)
        ctx.model, fmt = _validate(body)
        assert ctx.key is not None
        target = ctx.target = state.catalog.route(ctx.model, ctx.key)
        adaptor = state.adaptors.get(target.provider)
        await state.filters.before(ctx, body)
        ureq = adaptor.embeddings_request(target, body)

        async def work() -> None:
            async with state.transport.request(ureq, stream=False) as resp:
                raw = await resp.read()
                status = resp.status
            if status >= 400:
                raise adaptor.error(target, status, raw)
            obj, ctx.usage = adaptor.embeddings_response(target, raw)
            for item in obj["data"]:
                if not isinstance(item, dict):
                    raise UpstreamError("The upstream provider returned malformed embeddings.")
                vec = item.get("embedding")
                if fmt == "base64" and isinstance(vec, list):
                    item["embedding"] = encode_base64(vec)
                elif fmt == "float" and isinstance(vec, str):
                    arr = array("f")
                    arr.frombytes(base64.b64decode(vec))
                    item["embedding"] = arr.tolist()
            ctx.finished = True
            await send_json(req.send, 200, ok_body(obj, state.settings.envelope), req.request_id)

        await run_watched(req, ctx, work)
    except RelayError as err:
        await fail(state, req, ctx, err)
    finally:
        await state.filters.after(ctx)
        finish(state, req, ctx)
