"""Gemini-format inbound ``/v1beta/models/{model}:{method}`` (issue 14): not built yet."""

from __future__ import annotations

from relaygate.asgi import Request
from relaygate.errors import NotImplementedByProvider, send_error
from relaygate.state import AppState

__all__ = ["handle_gemini"]


async def handle_gemini(state: AppState, req: Request, model: str, method: str) -> None:
    s = state.settings
    err = NotImplementedByProvider(f"{req.method} {req.path} is not supported by this gateway yet.")
    await send_error(
        req.send, err, req.request_id, envelope=s.envelope, openai_statuses=s.openai_status_codes
    )
