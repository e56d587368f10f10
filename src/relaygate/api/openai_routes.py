"""``GET /v1/models`` and ``GET /v1/models/{id}``: only what the key may use."""

from __future__ import annotations

from relaygate.asgi import Request, ok_body, send_json
from relaygate.catalog import ModelEntry
from relaygate.context import RelayContext
from relaygate.errors import RelayError
from relaygate.relay.pipeline import authenticate, fail, finish
from relaygate.state import AppState

__all__ = ["handle_model", "handle_models"]


def _model_obj(m: ModelEntry) -> dict[str, object]:
    return {"id": m.id, "object": "model", "created": m.created, "owned_by": m.owned_by}


async def handle_models(state: AppState, req: Request) -> None:
    ctx = RelayContext(req.request_id, "models", client_ip=req.client_ip)
    try:
        authenticate(state, req, ctx)
        assert ctx.key is not None
        data = [_model_obj(m) for m in state.catalog.models_for(ctx.key)]
        body = ok_body({"object": "list", "data": data}, state.settings.envelope)
        await send_json(req.send, 200, body, req.request_id)
    except RelayError as err:
        await fail(state, req, ctx, err)
    finally:
        finish(state, req, ctx)  # model listing writes no request-log row (endpoint "models")


async def handle_model(state: AppState, req: Request, model_id: str) -> None:
    ctx = RelayContext(req.request_id, "models", client_ip=req.client_ip)
    try:
        authenticate(state, req, ctx)
        assert ctx.key is not None
        entry = state.catalog.model_for(ctx.key, model_id)
        await send_json(
            req.send, 200, ok_body(_model_obj(entry), state.settings.envelope), req.request_id
        )
    except RelayError as err:
        await fail(state, req, ctx, err)
    finally:
        finish(state, req, ctx)
