"""``/v1/messages`` and ``/v1/messages/count_tokens`` (issue 14): not built yet."""

from __future__ import annotations

from relaygate.asgi import Request
from relaygate.errors import NotImplementedByProvider, send_error
from relaygate.state import AppState

__all__ = ["handle_count_tokens", "handle_messages"]


async def _todo(state: AppState, req: Request) -> None:
    s = state.settings
    err = NotImplementedByProvider(f"{req.method} {req.path} is not supported by this gateway yet.")
    await send_error(
        req.send, err, req.request_id, envelope=s.envelope, openai_statuses=s.openai_status_codes
    )


async def handle_messages(state: AppState, req: Request) -> None:
    await _todo(state, req)


async def handle_count_tokens(state: AppState, req: Request) -> None:
    await _todo(state, req)
