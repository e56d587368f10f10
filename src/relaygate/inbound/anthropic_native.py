"""An Anthropic Messages request sent as is to an Anthropic channel (pure, no I/O).

The client's body goes on unchanged but for ``model`` (the channel's upstream name), with
the channel's credentials and URL as the Anthropic adaptor builds them
(``providers/anthropic.py``): ``x-api-key``, ``anthropic-version`` (the client's, else the
channel's ``config.anthropic_version``), ``anthropic-beta`` (the channel's
``config.anthropic_beta`` and the client's, joined). On Vertex AI (profile ``vertex``) the
model moves to the URL and the version into the body, as the adaptor does.
"""

from __future__ import annotations

from typing import Any

import orjson

from relaygate.providers.anthropic import ANTHROPIC_VERSION, messages_url
from relaygate.providers.anthropic_request import VERTEX_ANTHROPIC_VERSION
from relaygate.providers.base import Target, UpstreamRequest
from relaygate.providers.gemini import vertex_url

__all__ = ["count_tokens_request", "native_body", "native_request"]


def native_body(target: Target, body: dict[str, Any]) -> dict[str, Any]:
    """The client's body for ``target``: only ``model`` changes (a copy)."""
    out = dict(body)
    out["model"] = target.upstream_model
    if target.profile == "vertex":
        del out["model"]
        out.setdefault(
            "anthropic_version",
            str(target.config.get("anthropic_version") or VERTEX_ANTHROPIC_VERSION),
        )
    return out


def _betas(target: Target, client_beta: str | None) -> str | None:
    names: list[str] = []
    beta = target.config.get("anthropic_beta")
    if isinstance(beta, str):
        names.extend(beta.split(","))
    elif isinstance(beta, list):
        names.extend(b for b in beta if isinstance(b, str))
    if client_beta:
        names.extend(client_beta.split(","))
    seen: list[str] = []
    for name in (n.strip() for n in names):
        if name and name not in seen:
            seen.append(name)
    return ",".join(seen) or None


def _headers(target: Target, stream: bool, version: str | None, beta: str | None) -> dict[str, str]:
    headers = {"content-type": "application/json"}
    if target.profile == "vertex":
        credential = target.token or target.api_key
        if credential:
            headers["authorization"] = "Bearer " + credential
    else:
        headers["x-api-key"] = target.token or target.api_key
        headers["anthropic-version"] = version or str(
            target.config.get("anthropic_version") or ANTHROPIC_VERSION
        )
        betas = _betas(target, beta)
        if betas:
            headers["anthropic-beta"] = betas
    if stream:
        headers["accept"] = "text/event-stream"
    return headers


def native_request(
    target: Target,
    body: dict[str, Any],
    stream: bool,
    *,
    version: str | None = None,
    beta: str | None = None,
) -> UpstreamRequest:
    """``POST /v1/messages`` on ``target`` with the client's ``body`` (``version`` and
    ``beta``: the client's ``anthropic-version`` / ``anthropic-beta`` headers)."""
    payload = orjson.dumps(native_body(target, body))
    if target.profile == "vertex":
        url = vertex_url(target, "anthropic", "streamRawPredict" if stream else "rawPredict")
    else:
        url = messages_url(target.base_url)
    return UpstreamRequest(url=url, headers=_headers(target, stream, version, beta), body=payload)


def count_tokens_request(
    target: Target, body: dict[str, Any], *, version: str | None = None, beta: str | None = None
) -> UpstreamRequest | None:
    """``POST /v1/messages/count_tokens`` on ``target`` (None on Vertex AI, which has no
    such endpoint for Claude: counted locally then)."""
    if target.profile == "vertex":
        return None
    payload = dict(body)
    payload["model"] = target.upstream_model
    payload.pop("stream", None)
    payload.pop("max_tokens", None)
    return UpstreamRequest(
        url=messages_url(target.base_url) + "/count_tokens",
        headers=_headers(target, False, version, beta),
        body=orjson.dumps(payload),
    )
