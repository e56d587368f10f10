"""What the admin app hands its route modules (``admin_reports``, ``admin_billing``,
``admin_prices``, ``admin_health``, ``admin_model_routes``, ``admin_routing``): its route
builder (authentication, JSON errors, the 405 of other methods), its JSON response (the
``code``/``msg`` envelope) and its body reader (size limit, a JSON object)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from relaygate.services.admin import AdminService
from relaygate.state import AppState

__all__ = ["AdminKit", "Handler", "Respond"]

Handler = Callable[[Request, AdminService, AppState], Awaitable[Response]]


class Respond(Protocol):
    def __call__(self, payload: dict[str, Any], status: int = 200) -> Response: ...


@dataclass(frozen=True, slots=True)
class AdminKit:
    """The admin app's helpers, built once in ``api/admin_routes.py``."""

    resource: Callable[[str, Mapping[str, Handler]], Route]
    respond: Respond
    body_of: Callable[[Request], Awaitable[dict[str, Any]]]
