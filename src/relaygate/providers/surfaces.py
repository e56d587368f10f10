"""The rest of OpenAI's API surface, as the OpenAI-compatible adaptor sends it upstream.

Beyond chat and embeddings, OpenAI's API has endpoints a gateway passes through nearly as
they are: completions, moderations, images, audio, rerank (the Jina/Cohere shape vendors
use), and the stateful objects — files, fine-tuning jobs, assistants and threads, vector
stores, batches, videos. Each belongs to one **surface** (``SURFACES``); a channel serves
the surfaces its profile lists (``PROFILE_SURFACES``) unless its ``config.surfaces`` says
otherwise (``docs/api-surface.md``).

This module is pure (no I/O): :func:`surface_request` builds the upstream request for one
:class:`SurfaceCall`; the relay (``relay/surface.py``, ``relay/objects.py``) sends it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import orjson

from relaygate.providers.base import Target, UpstreamRequest
from relaygate.providers.profiles import Profile

__all__ = [
    "MODEL_SURFACES",
    "OBJECT_SURFACES",
    "PROFILE_SURFACES",
    "SURFACES",
    "SurfaceCall",
    "channel_serves",
    "channel_surfaces",
    "surface_request",
]

#: surfaces whose requests name a model (routed like chat: by model)
#: ("realtime": ``/v1/realtime`` over WebSocket, relay/realtime.py)
MODEL_SURFACES = (
    "completions", "moderations", "images", "audio", "rerank", "realtime", "responses",
)  # fmt: skip
#: surfaces of stateful objects (routed to the channel that holds the object)
OBJECT_SURFACES = ("files", "fine_tuning", "assistants", "vector_stores", "batches", "videos")
SURFACES = MODEL_SURFACES + OBJECT_SURFACES

_OPENAI = frozenset(SURFACES) - {"rerank"}

#: what each OpenAI-compatible profile serves besides chat and embeddings, from each
#: vendor's documentation (docs/api-surface.md, "Which channels serve what"); a channel's
#: ``config.surfaces`` replaces it
PROFILE_SURFACES: dict[str, frozenset[str]] = {
    "openai": _OPENAI,
    "azure_v1": frozenset(
        {"completions", "images", "audio", "files", "fine_tuning", "assistants"}
        | {"vector_stores", "batches", "responses"}
    ),
    "azure": frozenset({"completions", "images", "audio"}),
    "generic": frozenset(SURFACES),
    "groq": frozenset({"audio", "files", "batches"}),
    "xai": frozenset({"images"}),
    "glm": frozenset({"images", "files", "batches"}),
    "glm_jwt": frozenset({"images", "files", "batches"}),
    "qwen": frozenset({"files", "batches"}),
    "moonshot": frozenset({"files"}),
    "doubao": frozenset({"images"}),
    "ollama": frozenset({"completions"}),
    "llamacpp": frozenset({"completions", "rerank"}),
    "openrouter": frozenset({"completions"}),
}


def channel_serves(provider: str, profile: str, config: dict[str, Any], surface: str) -> bool:
    """Whether a channel serves ``surface``: only the OpenAI-compatible adaptor passes the
    rest of the surface through (the native protocols have no such endpoints)."""
    return provider == "openai_compat" and surface in channel_surfaces(profile, config)


def channel_surfaces(profile: str, config: dict[str, Any]) -> frozenset[str]:
    """The surfaces a channel serves: its ``config.surfaces`` if set, else its profile's."""
    own = config.get("surfaces")
    if isinstance(own, list):
        return frozenset(s for s in own if isinstance(s, str))
    return PROFILE_SURFACES.get(profile, frozenset())


@dataclass(slots=True)
class SurfaceCall:
    """One call on the surface, as the relay received and checked it.

    ``path`` is OpenAI's path without the ``/v1`` prefix (``/files/file-abc/content``);
    ``query`` the raw query string (``b""`` for none). The body is either ``json`` (sent
    with ``model`` set to the upstream model when ``set_model``) or a streamed one
    (``stream``, a factory so that a retry on another channel can send it again, with its
    ``content_type`` and ``length``), or nothing."""

    method: str
    path: str
    query: bytes = b""
    json: dict[str, Any] | None = None
    stream: Callable[[], AsyncIterator[bytes]] | None = None
    content_type: str = ""
    length: int = 0
    set_model: bool = True
    #: request headers passed on as they are (``OpenAI-Beta`` for assistants)
    headers: tuple[tuple[str, str], ...] = ()


def _url(profile: Profile, target: Target, call: SurfaceCall) -> str:
    base = target.base_url
    path = call.path
    query = call.query.decode("latin-1") if call.query else ""
    if profile.url_style == "azure":
        version = target.config.get("api_version") or profile.default_api_version
        deployments = target.config.get("deployments") or {}
        deployment = deployments.get(target.upstream_model, target.upstream_model)
        url = f"{base}/openai/deployments/{deployment}{path}?api-version={version}"
        return url + "&" + query if query else url
    url = f"{base}/openai/v1{path}" if profile.url_style == "azure_v1" else base + path
    return url + "?" + query if query else url


def surface_request(
    profile: Profile, target: Target, call: SurfaceCall, headers: dict[str, str]
) -> UpstreamRequest:
    """The upstream request for ``call`` on ``target``; ``headers`` are the profile's
    authentication headers (with a JSON content type that is replaced as needed)."""
    out = dict(headers)
    for name, value in call.headers:
        out[name] = value
    body = b""
    if call.json is not None:
        payload = call.json
        if call.set_model and "model" in payload:
            payload = dict(payload)
            payload["model"] = target.upstream_model
        body = orjson.dumps(payload)
        out["Content-Type"] = "application/json"
    elif call.stream is not None:
        out["Content-Type"] = call.content_type
        out["Content-Length"] = str(call.length)
    else:
        out.pop("Content-Type", None)
    ureq = UpstreamRequest(_url(profile, target, call), out, body, method=call.method)
    ureq.stream_body = call.stream
    return ureq
