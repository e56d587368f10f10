"""Which handler serves a request: the route tables of the model API and the path rules of
the endpoints whose paths carry values (objects, Gemini's ``{model}:{verb}``, Responses ids).

``app.py`` looks a request up here: first ``RELAY_ROUTES`` (the hot path: one dict lookup),
then :func:`extra_call` (the other client formats and the rest of OpenAI's surface), then
the account, health and model-detail endpoints; ``ALLOWED`` answers 405 for a known path
with a wrong method.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from urllib.parse import unquote

from relaygate.api.account_routes import ACCOUNT_PATHS
from relaygate.api.health import handle_live, handle_metrics, handle_ready
from relaygate.api.openai_routes import handle_models
from relaygate.api.pricing import handle_pricing
from relaygate.asgi import Request
from relaygate.relay.chat import handle_chat
from relaygate.relay.embeddings import handle_embeddings
from relaygate.relay.gemini_in import handle_gemini
from relaygate.relay.messages import handle_count_tokens, handle_messages
from relaygate.relay.object_paths import parse_path as parse_object_path
from relaygate.relay.objects import handle_object
from relaygate.relay.responses import handle_responses
from relaygate.relay.surface import SURFACE_ROUTES
from relaygate.state import AppState

__all__ = [
    "ALLOWED",
    "HEALTH",
    "NOT_YET",
    "REALTIME_PATHS",
    "RELAY_ROUTES",
    "Handler",
    "allowed_methods",
    "extra_call",
    "model_id",
]

Handler = Callable[[AppState, Request], Awaitable[None]]

RELAY_ROUTES: dict[tuple[str, str], Handler] = {}
#: methods served per known path (a wrong method is 405 with ``Allow``)
ALLOWED: dict[str, tuple[str, ...]] = {}
for _prefix in ("/v1", ""):
    RELAY_ROUTES[("POST", f"{_prefix}/chat/completions")] = handle_chat
    RELAY_ROUTES[("POST", f"{_prefix}/embeddings")] = handle_embeddings
    RELAY_ROUTES[("GET", f"{_prefix}/models")] = handle_models
# the public price catalogue (no key needed)
RELAY_ROUTES[("GET", "/v1/pricing")] = handle_pricing
RELAY_ROUTES[("GET", "/api/pricing")] = handle_pricing
#: the rest of the model endpoints (relay/surface.py): byte answers, so no gzip wrapper
SURFACE: dict[str, Handler] = {}
for _path, _handler in SURFACE_ROUTES.items():
    SURFACE[_path] = SURFACE[_path[3:]] = _handler
    ALLOWED[_path] = ALLOWED[_path[3:]] = ("POST",)
for _method, _path in RELAY_ROUTES:
    ALLOWED[_path] = (*ALLOWED.get(_path, ()), _method)
for _path, _methods in ACCOUNT_PATHS.items():  # balance, packages, usage (account_routes.py)
    ALLOWED[_path] = _methods

HEALTH: dict[str, Handler] = {
    "/healthz": handle_live,
    "/livez": handle_live,
    "/readyz": handle_ready,
    "/metrics": handle_metrics,  # Prometheus (docs/metrics.md)
}
for _path in HEALTH:
    ALLOWED[_path] = ("GET",)

# In the product surface but not built yet: say so plainly.
NOT_YET = ("/v1/uploads",)

#: the other client formats (relay/messages.py, relay/gemini_in.py, relay/realtime.py)
MESSAGES_PATHS: dict[str, Handler] = {
    "/v1/messages": handle_messages,
    "/messages": handle_messages,
    "/v1/messages/count_tokens": handle_count_tokens,
    "/messages/count_tokens": handle_count_tokens,
}
GEMINI_PREFIXES = ("/v1beta/models/", "/v1/models/")
REALTIME_PATHS = frozenset({"/v1/realtime", "/realtime"})

_MODEL_PREFIXES = ("/v1/models/", "/models/")


def allowed_methods(path: str) -> tuple[str, ...] | None:
    """The methods served at a known path (None: not a path this gateway serves)."""
    return ALLOWED.get(path) or (("GET",) if model_id(path) is not None else None)


def model_id(path: str) -> str | None:
    for prefix in _MODEL_PREFIXES:
        if path.startswith(prefix) and len(path) > len(prefix):
            return unquote(path[len(prefix) :])
    return None


def extra_call(
    st: AppState, req: Request, path: str, method: str
) -> Callable[[], Awaitable[None]] | None:
    """The call serving a request to the other client formats (the Responses API,
    Anthropic Messages, Gemini ``generateContent``) or the rest of OpenAI's surface (model
    endpoints, objects); None when ``path`` is none of them. A malformed object id
    raises its ``NotFound``."""
    if method == "POST":
        handler = SURFACE.get(path) or MESSAGES_PATHS.get(path)
        if handler is not None:
            return functools.partial(handler, st, req)
        if path.startswith(GEMINI_PREFIXES) and ":" in path:
            model, _, verb = path.split("/models/", 1)[1].rpartition(":")
            if model and verb:
                return functools.partial(handle_gemini, st, req, unquote(model), verb)
    if path.startswith(("/v1/responses", "/responses")):
        rest = path.split("/responses", 1)[1]
        if rest == "" or rest.startswith("/"):
            return functools.partial(handle_responses, st, req, rest)
    op = parse_object_path(path if path.startswith("/v1/") else "/v1" + path)
    if op is None:
        return None
    return functools.partial(handle_object, st, req, op)
