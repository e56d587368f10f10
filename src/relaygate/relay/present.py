"""How an answer is shown to a client that spoke another format than OpenAI's chat
completions (the Anthropic Messages, Gemini and Responses inbound endpoints).

Those endpoints translate their request into a chat-completions body and run the ordinary
chat relay (``relay/chat.py``): routing, billing, limits and filters apply the same. Before
that they put a :class:`Presenter` in the request's :data:`PRESENTER` slot, and an error
renderer in :data:`ERROR_RENDER`; the chat relay then writes the whole answer
(``unary``), the stream (``writer``, usually a ``relay/stream.py`` ``TranslatingWriter``) and
any error (``ERROR_RENDER``) in that format. Without them (plain chat) nothing changes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from relaygate.asgi import Request, Send
from relaygate.context import RelayContext, Slot
from relaygate.errors import RelayError
from relaygate.relay.stream import SSEWriter
from relaygate.state import AppState

__all__ = ["ERROR_RENDER", "PRESENTER", "ErrorRender", "Presenter", "open_writer"]

#: an error in the client's format: (error, HTTP status) -> response body
ErrorRender = Callable[[RelayError, int], bytes]


class Presenter(Protocol):
    def unary(self, ctx: RelayContext, obj: dict[str, Any]) -> bytes:
        """The body of a whole answer, from the OpenAI chat completion ``obj``."""
        ...

    def writer(self, send: Send, ctx: RelayContext, request_id: str, keepalive: float) -> SSEWriter:
        """The stream writer: OpenAI chunk payloads in, the client's frames out."""
        ...


PRESENTER: Slot[Presenter] = Slot("present.presenter")
ERROR_RENDER: Slot[ErrorRender] = Slot("present.error_render")


def open_writer(state: AppState, req: Request, ctx: RelayContext) -> SSEWriter:
    """The stream writer of ``ctx``: plain SSE, or its inbound format's frames."""
    present = ctx.get(PRESENTER)
    if present is None:
        return SSEWriter(req.send, ctx, req.request_id, state.settings.sse_keepalive)
    return present.writer(req.send, ctx, req.request_id, state.settings.sse_keepalive)
