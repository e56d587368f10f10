"""``/v1/realtime`` over WebSocket (issue 14): not built yet; the handshake is refused."""

from __future__ import annotations

from relaygate.asgi import Receive, Scope, Send
from relaygate.state import AppState

__all__ = ["handle_realtime"]


async def handle_realtime(state: AppState, scope: Scope, receive: Receive, send: Send) -> None:
    message = await receive()
    if message["type"] == "websocket.connect":
        await send({"type": "websocket.close", "code": 1008})
