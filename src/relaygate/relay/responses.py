"""``/v1/responses`` (issue 14): not built yet."""

from __future__ import annotations

from relaygate.asgi import Request
from relaygate.errors import NotImplementedByProvider, send_error
from relaygate.state import AppState

__all__ = ["handle_responses"]


async def handle_responses(state: AppState, req: Request, rest: str) -> None:
    """``rest``: the path after ``/v1/responses`` ("" or "/{id}[/…]")."""
    s = state.settings
    err = NotImplementedByProvider(f"{req.method} {req.path} is not supported by this gateway yet.")
    await send_error(
        req.send, err, req.request_id, envelope=s.envelope, openai_statuses=s.openai_status_codes
    )
